//! TLS material: system roots plus an extra CA, and an optional client certificate.
//! Verification is always on; there is no switch to turn it off.

use redis::{ClientTlsConfig, TlsCertificates};

use crate::error::{StoreError, StoreResult};

/// PEM text given in the `tls` option.
#[derive(Clone, Default)]
pub struct TlsOptions {
    pub ca: Option<Vec<u8>>,
    pub cert: Option<Vec<u8>>,
    pub key: Option<Vec<u8>>,
}

impl TlsOptions {
    /// What redis-rs needs. Its `root_cert` replaces the system roots, so an extra CA is
    /// appended to the system's own certificates to keep both trusted.
    pub fn certificates(&self) -> StoreResult<TlsCertificates> {
        let client_tls = match (&self.cert, &self.key) {
            (None, None) => None,
            (Some(cert), Some(key)) => {
                check_pem(cert, "tls.cert", "CERTIFICATE")?;
                check_pem(key, "tls.key", "PRIVATE KEY")?;
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
        let root_cert = match &self.ca {
            None => None,
            Some(ca) => {
                check_pem(ca, "tls.ca", "CERTIFICATE")?;
                let mut bundle = system_roots_pem();
                bundle.extend_from_slice(ca);
                Some(bundle)
            }
        };
        Ok(TlsCertificates {
            client_tls,
            root_cert,
        })
    }
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

fn system_roots_pem() -> Vec<u8> {
    let mut pem = Vec::new();
    for cert in rustls_native_certs::load_native_certs().certs {
        pem.extend_from_slice(b"-----BEGIN CERTIFICATE-----\n");
        let encoded = base64(cert.as_ref());
        for line in encoded.as_bytes().chunks(64) {
            pem.extend_from_slice(line);
            pem.push(b'\n');
        }
        pem.extend_from_slice(b"-----END CERTIFICATE-----\n");
    }
    pem
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
