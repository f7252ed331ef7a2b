//! TLS material: what Node trusts (its bundled roots and `NODE_EXTRA_CA_CERTS`, passed in by
//! `index.js`), the system store, an extra CA, and an optional client certificate.
//! Verification is always on; there is no switch to turn it off.

use std::collections::HashSet;
use std::sync::{Arc, Mutex, OnceLock};

use redis::{ClientTlsConfig, TlsCertificates};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::sign::CertifiedKey;
use rustls::RootCertStore;

use crate::error::{StoreError, StoreResult};

/// What the store offers in a handshake, said when a server finds nothing in common with it:
/// redis-rs builds its rustls configuration with the process's default provider, which is
/// ring here (the only one compiled in), with rustls' default versions and cipher suites.
/// rustls has no CBC suites: a server limited to TLS 1.2 with CBC suites (Azure's only TLS
/// 1.2 suites) can only be reached over TLS 1.3. The test below ties this text to rustls.
pub(crate) const OFFERED: &str = "the store offers TLS 1.3 (AES-GCM, ChaCha20-Poly1305) and \
                                  TLS 1.2 with ECDHE and AES-GCM or ChaCha20-Poly1305 only, \
                                  no CBC suites";

/// PEM text given in the `tls` option, and what Node trusts.
#[derive(Clone, Default)]
pub struct TlsOptions {
    pub ca: Option<Vec<u8>>,
    pub cert: Option<Vec<u8>>,
    pub key: Option<Vec<u8>>,
    /// Node's trust as PEM (`tls.rootCertificates` and `NODE_EXTRA_CA_CERTS`), from
    /// `index.js`: a slim container without `ca-certificates` has no system store.
    pub node_roots: Option<Arc<str>>,
}

impl TlsOptions {
    /// What redis-rs needs. Its `root_cert` replaces the system roots, so the bundle holds
    /// Node's roots, the system's own and the extra CA, to keep all of them trusted.
    pub fn certificates(&self) -> StoreResult<TlsCertificates> {
        let client_tls = match (&self.cert, &self.key) {
            (None, None) => None,
            (Some(cert), Some(key)) => {
                check_pem(cert, "tls.cert", "CERTIFICATE")?;
                check_pem(key, "tls.key", "PRIVATE KEY")?;
                check_identity(cert, key)?;
                Some(ClientTlsConfig {
                    client_cert: cert.clone(),
                    client_key: key.clone(),
                })
            }
            _ => {
                return Err(StoreError::invalid_config(
                    "tls: cert and key must be given together",
                ))
            }
        };
        let mut bundle = default_roots(self.node_roots.as_deref()).to_vec();
        if let Some(ca) = &self.ca {
            check_pem(ca, "tls.ca", "CERTIFICATE")?;
            bundle.extend_from_slice(ca);
        }
        Ok(TlsCertificates {
            client_tls,
            root_cert: Some(bundle),
        })
    }
}

/// Node's roots and the system's, as one PEM bundle: each certificate once, and only those
/// rustls takes as a trust anchor (one it cannot read would make redis-rs refuse the whole
/// bundle, where Node only warns). Built once per distinct input: every store of a process
/// gets the same ~140 roots from `index.js`.
fn default_roots(node_roots: Option<&str>) -> Arc<Vec<u8>> {
    type Cached = Option<(Option<Arc<str>>, Arc<Vec<u8>>)>;
    static CACHE: Mutex<Cached> = Mutex::new(None);
    let mut cache = CACHE
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    if let Some((input, bundle)) = cache.as_ref() {
        if input.as_deref() == node_roots {
            return bundle.clone();
        }
    }
    let node = node_roots.map(str::as_bytes).unwrap_or_default();
    let certificates = CertificateDer::pem_slice_iter(node)
        .filter_map(Result::ok)
        .chain(system_roots().iter().cloned());
    let mut seen = HashSet::new();
    let mut bundle = Vec::new();
    for certificate in certificates {
        let usable = RootCertStore::empty().add(certificate.clone()).is_ok();
        if usable && seen.insert(certificate.as_ref().to_vec()) {
            push_pem(&mut bundle, certificate.as_ref());
        }
    }
    let bundle = Arc::new(bundle);
    *cache = Some((node_roots.map(Arc::from), bundle.clone()));
    bundle
}

/// The system store, read once per process (as Node reads its own): `SSL_CERT_FILE` and
/// `SSL_CERT_DIR` where set, else the platform's. Unreadable files are skipped.
fn system_roots() -> &'static [CertificateDer<'static>] {
    static ROOTS: OnceLock<Vec<CertificateDer<'static>>> = OnceLock::new();
    ROOTS.get_or_init(|| rustls_native_certs::load_native_certs().certs)
}

fn check_pem(pem: &[u8], option: &str, label: &str) -> StoreResult<()> {
    let text = std::str::from_utf8(pem).unwrap_or("");
    if text.contains("-----BEGIN ") && text.contains(label) {
        Ok(())
    } else {
        Err(StoreError::invalid_config(format!(
            "{option}: expected PEM text containing a {label}"
        )))
    }
}

/// A client certificate and key that could never be presented are refused here, as a bad CA
/// is, and not at each connection attempt for ever: the chain must parse, the key must be one
/// rustls signs with (RSA, ECDSA, Ed25519), and it must be the key of the first certificate.
/// redis-rs reads the same PEM the same way when it connects. No message quotes the PEM.
fn check_identity(cert: &[u8], key: &[u8]) -> StoreResult<()> {
    let invalid = |message: &str| StoreError::invalid_config(message);
    let chain = CertificateDer::pem_slice_iter(cert)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|_| invalid("tls.cert: its PEM cannot be read"))?;
    if chain.is_empty() {
        return Err(invalid(
            "tls.cert: expected PEM text containing a CERTIFICATE",
        ));
    }
    let key = PrivateKeyDer::from_pem_slice(key)
        .map_err(|_| invalid("tls.key: its PEM holds no private key that can be read"))?;
    let provider = rustls::crypto::ring::default_provider();
    match CertifiedKey::from_der(chain, key, &provider) {
        Ok(_) => Ok(()),
        Err(rustls::Error::InconsistentKeys(_)) => Err(invalid(
            "tls: tls.key is not the key of the certificate in tls.cert",
        )),
        Err(rustls::Error::InvalidCertificate(_)) => {
            Err(invalid("tls.cert: the certificate cannot be parsed"))
        }
        Err(_) => Err(invalid(
            "tls.key: not a private key the store can sign with (RSA of 2048 to 4096 bits, \
             ECDSA on P-256 or P-384, or Ed25519; not encrypted)",
        )),
    }
}

fn push_pem(pem: &mut Vec<u8>, der: &[u8]) {
    pem.extend_from_slice(b"-----BEGIN CERTIFICATE-----\n");
    let encoded = base64(der);
    for line in encoded.as_bytes().chunks(64) {
        pem.extend_from_slice(line);
        pem.push(b'\n');
    }
    pem.extend_from_slice(b"-----END CERTIFICATE-----\n");
}

fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | (u32::from(*b) << (16 - 8 * i)));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i)) as usize & 63] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_rfc4648_vectors() {
        let cases = [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foobar", "Zm9vYmFy"),
        ];
        for (input, expected) in cases {
            assert_eq!(base64(input.as_bytes()), expected);
        }
    }

    /// `OFFERED` says what rustls offers: each default suite of the ring provider is one of
    /// the kinds it names, every kind it names is offered, and the versions are 1.3 and 1.2.
    #[test]
    fn offered_names_the_suites_and_versions_rustls_offers() {
        let suites: Vec<String> = rustls::crypto::ring::default_provider()
            .cipher_suites
            .iter()
            .map(|suite| format!("{:?}", suite.suite()))
            .collect();
        let aead = |name: &str| {
            (name.contains("_AES_") && name.ends_with("GCM_SHA256") || name.contains("GCM_SHA384"))
                || name.contains("CHACHA20_POLY1305")
        };
        for name in &suites {
            assert!(!name.contains("CBC"), "{name}");
            assert!(aead(name), "{name} is not AES-GCM or ChaCha20-Poly1305");
            assert!(
                name.starts_with("TLS13_") || name.starts_with("TLS_ECDHE_"),
                "{name} is neither TLS 1.3 nor TLS 1.2 with ECDHE"
            );
        }
        for (version, cipher) in [
            ("TLS13_", "AES_"),
            ("TLS13_", "CHACHA20"),
            ("TLS_ECDHE_", "AES_"),
            ("TLS_ECDHE_", "CHACHA20"),
        ] {
            assert!(
                suites
                    .iter()
                    .any(|name| name.starts_with(version) && name.contains(cipher)),
                "no {version}*{cipher}* suite in {suites:?}"
            );
        }
        let versions: Vec<_> = rustls::DEFAULT_VERSIONS
            .iter()
            .map(|version| version.version)
            .collect();
        assert_eq!(
            versions,
            [
                rustls::ProtocolVersion::TLSv1_3,
                rustls::ProtocolVersion::TLSv1_2
            ]
        );
        for words in [
            "TLS 1.3 (AES-GCM, ChaCha20-Poly1305)",
            "TLS 1.2 with ECDHE",
            "no CBC",
        ] {
            assert!(OFFERED.contains(words), "{words}");
        }
    }

    /// A self-signed CA made for this test (EC P-256, valid until 2126).
    const TEST_ROOT: &str = "-----BEGIN CERTIFICATE-----\nMIIBoDCCAUegAwIBAgIUSJJ+xpZQ4tefhbPw6qCPpCPVogcwCgYIKoZIzj0EAwIw\nJTEjMCEGA1UEAwwacmVkaXMtc3RvcmUgdW5pdCB0ZXN0IHJvb3QwIBcNMjYxMTMw\nMDAyNDA4WhgPMjEyNjExMDYwMDI0MDhaMCUxIzAhBgNVBAMMGnJlZGlzLXN0b3Jl\nIHVuaXQgdGVzdCByb290MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEPXZm4GZh\nkolMpIocFIFSk2DferbkJ/qWgWe0sced4HC6Ilx1jiTBf6nqwRMj5LNZZNcfSGd6\nyet9EEv3yWRiTqNTMFEwHQYDVR0OBBYEFBAMLQ8Yc9hYLtI4jFcsQ8dDGeDAMB8G\nA1UdIwQYMBaAFBAMLQ8Yc9hYLtI4jFcsQ8dDGeDAMA8GA1UdEwEB/wQFMAMBAf8w\nCgYIKoZIzj0EAwIDRwAwRAIgKtn1Ai8y6T/qn6O5wCS0dYgqrqHCZS6aO+F1BLzP\n2NcCIDkMW5mR2GX9MCVR020p4EtUyFs/j7xuoON5ShKGg3KP\n-----END CERTIFICATE-----\n";

    fn count(bundle: &[u8]) -> usize {
        String::from_utf8_lossy(bundle)
            .matches("-----BEGIN CERTIFICATE-----")
            .count()
    }

    #[test]
    fn node_roots_join_the_system_store_once_each_and_unreadable_ones_are_dropped() {
        let system = count(&default_roots(None));
        let junk = "-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydA==\n-----END CERTIFICATE-----\n";
        let node = format!("{TEST_ROOT}{junk}{TEST_ROOT}");
        let bundle = default_roots(Some(&node));
        assert_eq!(count(&bundle), system + 1);
        // What is kept reads back as the same certificate.
        let kept: Vec<_> = CertificateDer::pem_slice_iter(&bundle)
            .map(Result::unwrap)
            .collect();
        let given = CertificateDer::from_pem_slice(TEST_ROOT.as_bytes()).unwrap();
        assert!(kept.contains(&given));
    }

    #[test]
    fn the_bundle_always_replaces_the_crate_default_and_keeps_tls_ca() {
        let options = TlsOptions {
            ca: Some(TEST_ROOT.as_bytes().to_vec()),
            node_roots: Some(Arc::from(TEST_ROOT)),
            ..Default::default()
        };
        let bundle = options.certificates().unwrap().root_cert.unwrap();
        let text = String::from_utf8(bundle).unwrap();
        assert!(text.ends_with(TEST_ROOT), "tls.ca comes last, as given");
        assert!(TlsOptions::default()
            .certificates()
            .unwrap()
            .root_cert
            .is_some());
    }

    #[test]
    fn rejects_half_a_client_identity_and_non_pem() {
        let only_cert = TlsOptions {
            cert: Some(b"-----BEGIN CERTIFICATE-----".to_vec()),
            ..Default::default()
        };
        assert!(only_cert.certificates().is_err());
        let junk_ca = TlsOptions {
            ca: Some(b"not a pem".to_vec()),
            ..Default::default()
        };
        assert!(junk_ca
            .certificates()
            .unwrap_err()
            .message
            .starts_with("tls.ca"));
    }
}
