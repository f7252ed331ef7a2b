//! The options object as JavaScript passes it, mapped onto the store's `Options`: the store
//! checks the values and applies the defaults.

use napi::bindgen_prelude::{Buffer, Either};
use napi_derive::napi;

use crate::store::Options;

/// Extra trust and a client identity, as PEM text or Buffers.
#[napi(object)]
pub struct TlsOptions {
    /// An extra trusted CA, added to what Node trusts and the system roots.
    pub ca: Option<Either<String, Buffer>>,
    /// Client certificate, for servers that ask for one; needs `key`.
    pub cert: Option<Either<String, Buffer>>,
    /// Client private key; needs `cert`.
    pub key: Option<Either<String, Buffer>>,
}

/// Reconnect backoff: exponential from the base, capped, with jitter; retries forever.
#[napi(object)]
pub struct RetryOptions {
    /// Default 100.
    pub base_delay_ms: Option<f64>,
    /// Default 5000.
    pub max_delay_ms: Option<f64>,
}

/// Options of both stores, as `index.js` forwards them (the logger stays in JavaScript).
#[napi(object)]
pub struct NativeStoreOptions {
    /// TTL of a conversation, reset on every set. Default 86400.
    pub ttl_seconds: Option<f64>,
    /// Deadline of one store call, all its round trips included. Default 5000.
    pub command_timeout_ms: Option<f64>,
    /// Deadline of one connection attempt. Default 10000.
    pub connect_timeout_ms: Option<f64>,
    /// Most conversations `listByUser` returns. Default 50.
    pub list_limit: Option<f64>,
    /// Prepended to every key. Default ''.
    pub key_prefix: Option<String>,
    /// Extra trusted CA and client certificate. Default: what Node trusts (its bundled roots,
    /// `NODE_EXTRA_CA_CERTS`) and the system roots.
    pub tls: Option<TlsOptions>,
    /// Reconnect backoff. Default { baseDelayMs: 100, maxDelayMs: 5000 }.
    pub retry: Option<RetryOptions>,
    /// An idle connection is PINGed this often. Default 1000.
    pub health_check_interval_ms: Option<f64>,
    /// A larger serialized conversation is rejected. Default 4194304.
    pub max_record_bytes: Option<f64>,
    /// Redis Cluster mode. Default false.
    pub cluster: Option<bool>,
}

fn pem(value: &Option<Either<String, Buffer>>) -> Option<Vec<u8>> {
    value.as_ref().map(|v| match v {
        Either::A(text) => text.as_bytes().to_vec(),
        Either::B(bytes) => bytes.to_vec(),
    })
}

impl NativeStoreOptions {
    /// The values as given: the store checks them and applies the defaults.
    pub(crate) fn values(&self) -> Options {
        let tls = self.tls.as_ref();
        let retry = self.retry.as_ref();
        Options {
            ttl_seconds: self.ttl_seconds,
            list_limit: self.list_limit,
            max_record_bytes: self.max_record_bytes,
            key_prefix: self.key_prefix.clone(),
            command_timeout_ms: self.command_timeout_ms,
            connect_timeout_ms: self.connect_timeout_ms,
            health_check_interval_ms: self.health_check_interval_ms,
            retry_base_delay_ms: retry.and_then(|r| r.base_delay_ms),
            retry_max_delay_ms: retry.and_then(|r| r.max_delay_ms),
            cluster: self.cluster,
            tls_ca: tls.and_then(|t| pem(&t.ca)),
            tls_cert: tls.and_then(|t| pem(&t.cert)),
            tls_key: tls.and_then(|t| pem(&t.key)),
            credentials: None,
        }
    }
}
