//! The options object as JavaScript passes it, turned into the store's settings.

use napi::bindgen_prelude::{Buffer, Either};
use napi_derive::napi;

use crate::config::{backoff, milliseconds, whole_number};
use crate::conn::{self, ConnectionSettings, ServerAddress};
use crate::error::StoreResult;
use crate::store::StoreOptions;

/// Extra trust and a client identity, as PEM text or Buffers.
#[napi(object)]
pub struct TlsOptions {
    /// An extra trusted CA, added to the system roots.
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
    /// Extra trusted CA and client certificate. Default: system roots only.
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

pub(crate) struct RedisSettings {
    pub connection: ConnectionSettings,
    pub store: StoreOptions,
    pub key_prefix: String,
}

fn pem(value: &Option<Either<String, Buffer>>) -> Option<Vec<u8>> {
    value.as_ref().map(|v| match v {
        Either::A(text) => text.as_bytes().to_vec(),
        Either::B(bytes) => bytes.to_vec(),
    })
}

impl NativeStoreOptions {
    pub fn store_options(&self) -> StoreResult<StoreOptions> {
        StoreOptions {
            ttl_seconds: whole_number("ttlSeconds", self.ttl_seconds, 86_400, 1, 315_360_000)?,
            list_limit: whole_number("listLimit", self.list_limit, 50, 1, 10_000)? as usize,
            max_record_bytes: whole_number(
                "maxRecordBytes",
                self.max_record_bytes,
                4_194_304,
                1,
                536_870_912,
            )? as usize,
        }
        .checked()
    }

    pub(crate) fn redis_settings(&self, url: &str) -> StoreResult<RedisSettings> {
        let tls = self
            .tls
            .as_ref()
            .map_or_else(conn::TlsOptions::default, |t| conn::TlsOptions {
                ca: pem(&t.ca),
                cert: pem(&t.cert),
                key: pem(&t.key),
            });
        let retry = self.retry.as_ref();
        let connection = ConnectionSettings {
            address: ServerAddress::parse(url)?,
            tls,
            connect_timeout: milliseconds("connectTimeoutMs", self.connect_timeout_ms, 10_000, 1)?,
            command_timeout: milliseconds("commandTimeoutMs", self.command_timeout_ms, 5_000, 1)?,
            health_check_interval: milliseconds(
                "healthCheckIntervalMs",
                self.health_check_interval_ms,
                1_000,
                10,
            )?,
            backoff: backoff(
                retry.and_then(|r| r.base_delay_ms),
                retry.and_then(|r| r.max_delay_ms),
            )?,
            cluster: self.cluster.unwrap_or(false),
        };
        Ok(RedisSettings {
            connection,
            store: self.store_options()?,
            key_prefix: self.key_prefix.clone().unwrap_or_default(),
        })
    }
}
