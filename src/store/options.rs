//! Every option of the two stores: its default, its range, and the check of a value as the
//! caller gives it. The one home of these rules: the binding only maps JavaScript values onto
//! `Options`.

use std::ops::RangeInclusive;
use std::time::Duration;

use super::KeyLayout;
use crate::conn::{Backoff, ConnectionSettings, CredentialsProvider, ServerAddress, TlsOptions};
use crate::error::{StoreError, StoreResult};

pub const DEFAULT_TTL_SECONDS: u64 = 86_400;
pub const DEFAULT_LIST_LIMIT: u64 = 50;
pub const DEFAULT_MAX_RECORD_BYTES: u64 = 4 * 1024 * 1024;
pub const DEFAULT_KEY_PREFIX: &str = "";
pub const DEFAULT_COMMAND_TIMEOUT_MS: u64 = 5_000;
pub const DEFAULT_CONNECT_TIMEOUT_MS: u64 = 10_000;
pub const DEFAULT_HEALTH_CHECK_INTERVAL_MS: u64 = 1_000;
pub const DEFAULT_RETRY_BASE_DELAY_MS: u64 = 100;
pub const DEFAULT_RETRY_MAX_DELAY_MS: u64 = 5_000;
pub const DEFAULT_CLUSTER: bool = false;

/// Ten years.
pub const TTL_SECONDS_RANGE: RangeInclusive<u64> = 1..=315_360_000;
pub const LIST_LIMIT_RANGE: RangeInclusive<u64> = 1..=10_000;
/// Up to what one list returns, less its brackets: a record that large is listed alone.
pub const MAX_RECORD_BYTES_RANGE: RangeInclusive<u64> = 1..=(MAX_LIST_BYTES - 2);
/// `commandTimeoutMs`, `connectTimeoutMs`, `retry.baseDelayMs`, `retry.maxDelayMs`: up to a day.
pub const MILLISECONDS_RANGE: RangeInclusive<u64> = 1..=86_400_000;
/// A shorter interval would PING more than it finds.
pub const HEALTH_CHECK_INTERVAL_MS_RANGE: RangeInclusive<u64> = 10..=86_400_000;

/// The most JSON one list returns: past it, the newest conversations that fit. The list
/// crosses into JavaScript as one string, and V8's longest string is about 512 Mi characters.
/// A bound on what a list returns, not on the configuration: `listLimit × maxRecordBytes` may
/// be larger, since real conversations are far below `maxRecordBytes`.
pub const MAX_LIST_BYTES: u64 = 256 * 1024 * 1024;

/// The options as the caller gives them; `None` takes the default.
#[derive(Debug, Default, Clone)]
pub struct Options {
    pub ttl_seconds: Option<f64>,
    pub list_limit: Option<f64>,
    pub max_record_bytes: Option<f64>,
    pub key_prefix: Option<String>,
    pub command_timeout_ms: Option<f64>,
    pub connect_timeout_ms: Option<f64>,
    pub health_check_interval_ms: Option<f64>,
    pub retry_base_delay_ms: Option<f64>,
    pub retry_max_delay_ms: Option<f64>,
    pub cluster: Option<bool>,
    /// PEM text.
    pub tls_ca: Option<Vec<u8>>,
    pub tls_cert: Option<Vec<u8>>,
    pub tls_key: Option<Vec<u8>>,
    /// Where the Redis store's credentials come from (the `credentials` option); the memory
    /// store has no use for it.
    pub credentials: Option<CredentialsProvider>,
}

/// Every option, checked. `Default` is what an empty options object gives: the one place the
/// defaults apply.
#[derive(Clone)]
pub struct StoreOptions {
    pub ttl_seconds: u64,
    pub list_limit: usize,
    pub max_record_bytes: usize,
    /// '' or ends with ':' (see `KeyLayout`).
    pub key_prefix: String,
    pub command_timeout: Duration,
    pub connect_timeout: Duration,
    pub health_check_interval: Duration,
    pub(crate) retry: Backoff,
    pub cluster: bool,
    /// Checked when the store connects (`conn::TlsOptions::certificates`).
    pub(crate) tls: TlsOptions,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            ttl_seconds: DEFAULT_TTL_SECONDS,
            list_limit: DEFAULT_LIST_LIMIT as usize,
            max_record_bytes: DEFAULT_MAX_RECORD_BYTES as usize,
            key_prefix: DEFAULT_KEY_PREFIX.to_owned(),
            command_timeout: Duration::from_millis(DEFAULT_COMMAND_TIMEOUT_MS),
            connect_timeout: Duration::from_millis(DEFAULT_CONNECT_TIMEOUT_MS),
            health_check_interval: Duration::from_millis(DEFAULT_HEALTH_CHECK_INTERVAL_MS),
            retry: Backoff {
                base: Duration::from_millis(DEFAULT_RETRY_BASE_DELAY_MS),
                max: Duration::from_millis(DEFAULT_RETRY_MAX_DELAY_MS),
            },
            cluster: DEFAULT_CLUSTER,
            tls: TlsOptions::default(),
        }
    }
}

/// A whole-number option within `range`; `None` when absent.
fn whole_number(
    name: &str,
    value: Option<f64>,
    range: RangeInclusive<u64>,
) -> StoreResult<Option<u64>> {
    let Some(value) = value else {
        return Ok(None);
    };
    let (min, max) = range.into_inner();
    let whole = value.fract() == 0.0 && value >= min as f64 && value <= max as f64;
    if !whole {
        return Err(StoreError::invalid_config(format!(
            "{name}: expected a whole number from {min} to {max}, got {value}"
        )));
    }
    Ok(Some(value as u64))
}

fn milliseconds(
    name: &str,
    value: Option<f64>,
    range: RangeInclusive<u64>,
) -> StoreResult<Option<Duration>> {
    Ok(whole_number(name, value, range)?.map(Duration::from_millis))
}

impl Options {
    /// Checks each given value and fills in the defaults. The connection's options come first,
    /// then those of both stores, then the rules between them.
    pub fn check(&self) -> StoreResult<StoreOptions> {
        let default = StoreOptions::default();
        let ms = |name, value, range| -> StoreResult<Option<Duration>> {
            milliseconds(name, value, range)
        };
        let connect_timeout = ms(
            "connectTimeoutMs",
            self.connect_timeout_ms,
            MILLISECONDS_RANGE,
        )?
        .unwrap_or(default.connect_timeout);
        let command_timeout = ms(
            "commandTimeoutMs",
            self.command_timeout_ms,
            MILLISECONDS_RANGE,
        )?
        .unwrap_or(default.command_timeout);
        let health_check_interval = ms(
            "healthCheckIntervalMs",
            self.health_check_interval_ms,
            HEALTH_CHECK_INTERVAL_MS_RANGE,
        )?
        .unwrap_or(default.health_check_interval);
        let retry = Backoff {
            base: ms(
                "retry.baseDelayMs",
                self.retry_base_delay_ms,
                MILLISECONDS_RANGE,
            )?
            .unwrap_or(default.retry.base),
            max: ms(
                "retry.maxDelayMs",
                self.retry_max_delay_ms,
                MILLISECONDS_RANGE,
            )?
            .unwrap_or(default.retry.max),
        };
        if retry.max < retry.base {
            return Err(StoreError::invalid_config(
                "retry.maxDelayMs: must not be less than retry.baseDelayMs",
            ));
        }
        let ttl_seconds = whole_number("ttlSeconds", self.ttl_seconds, TTL_SECONDS_RANGE)?
            .unwrap_or(default.ttl_seconds);
        let list_limit = whole_number("listLimit", self.list_limit, LIST_LIMIT_RANGE)?
            .map_or(default.list_limit, |n| n as usize);
        let max_record_bytes = whole_number(
            "maxRecordBytes",
            self.max_record_bytes,
            MAX_RECORD_BYTES_RANGE,
        )?
        .map_or(default.max_record_bytes, |n| n as usize);
        let key_prefix = self.key_prefix.clone().unwrap_or(default.key_prefix);
        KeyLayout::new(key_prefix.as_str())?;
        Ok(StoreOptions {
            ttl_seconds,
            list_limit,
            max_record_bytes,
            key_prefix,
            command_timeout,
            connect_timeout,
            health_check_interval,
            retry,
            cluster: self.cluster.unwrap_or(default.cluster),
            tls: TlsOptions {
                ca: self.tls_ca.clone(),
                cert: self.tls_cert.clone(),
                key: self.tls_key.clone(),
                node_roots: None,
            },
        })
    }
}

/// What a Redis store is built from: the server's address and every option, checked.
pub struct RedisSettings {
    pub(crate) address: ServerAddress,
    pub(crate) options: StoreOptions,
    pub(crate) credentials: Option<CredentialsProvider>,
}

impl RedisSettings {
    /// The URL first, then the options, then the rule between them: a password comes from the
    /// URL or from `credentials`, not both.
    pub fn new(url: &str, options: &Options) -> StoreResult<RedisSettings> {
        let address = ServerAddress::parse(url)?;
        let checked = options.check()?;
        if options.credentials.is_some() && address.password.is_some() {
            return Err(StoreError::invalid_config(
                "credentials: cannot be combined with a password in redisUrl; remove one of them",
            ));
        }
        Ok(RedisSettings {
            address,
            options: checked,
            credentials: options.credentials.clone(),
        })
    }

    /// Trusts what Node trusts (its bundled roots and `NODE_EXTRA_CA_CERTS`, as PEM), besides
    /// the system store and `tls.ca`.
    pub fn trust_node_roots(&mut self, pem: Option<String>) {
        self.options.tls.node_roots = pem.map(Into::into);
    }

    pub(crate) fn connection(&self) -> ConnectionSettings {
        let options = &self.options;
        ConnectionSettings {
            address: self.address.clone(),
            tls: options.tls.clone(),
            connect_timeout: options.connect_timeout,
            command_timeout: options.command_timeout,
            health_check_interval: options.health_check_interval,
            backoff: options.retry,
            cluster: options.cluster,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    type Setter = fn(&mut Options, f64);

    /// Each whole-number option: its name in messages, how to give it, its range.
    const WHOLE_NUMBERS: [(&str, Setter, RangeInclusive<u64>); 8] = [
        (
            "ttlSeconds",
            |o, v| o.ttl_seconds = Some(v),
            TTL_SECONDS_RANGE,
        ),
        ("listLimit", |o, v| o.list_limit = Some(v), LIST_LIMIT_RANGE),
        (
            "maxRecordBytes",
            |o, v| o.max_record_bytes = Some(v),
            MAX_RECORD_BYTES_RANGE,
        ),
        (
            "commandTimeoutMs",
            |o, v| o.command_timeout_ms = Some(v),
            MILLISECONDS_RANGE,
        ),
        (
            "connectTimeoutMs",
            |o, v| o.connect_timeout_ms = Some(v),
            MILLISECONDS_RANGE,
        ),
        (
            "healthCheckIntervalMs",
            |o, v| o.health_check_interval_ms = Some(v),
            HEALTH_CHECK_INTERVAL_MS_RANGE,
        ),
        (
            "retry.baseDelayMs",
            |o, v| {
                o.retry_base_delay_ms = Some(v);
                o.retry_max_delay_ms = Some(v);
            },
            MILLISECONDS_RANGE,
        ),
        (
            "retry.maxDelayMs",
            |o, v| {
                o.retry_base_delay_ms = Some(1.0);
                o.retry_max_delay_ms = Some(v);
            },
            MILLISECONDS_RANGE,
        ),
    ];

    fn check(set: Setter, value: f64) -> StoreResult<StoreOptions> {
        let mut options = Options::default();
        set(&mut options, value);
        options.check()
    }

    #[test]
    fn list_limit_and_max_record_bytes_are_bounded_each_not_together() {
        // A list is bounded by what it returns (MAX_LIST_BYTES), not by the worst case.
        let options = Options {
            list_limit: Some(*LIST_LIMIT_RANGE.end() as f64),
            max_record_bytes: Some(*MAX_RECORD_BYTES_RANGE.end() as f64),
            ..Options::default()
        };
        assert!(options.check().is_ok());
    }

    /// `StoreOptions` is not `Debug`: it holds the TLS key.
    fn refused(checked: StoreResult<StoreOptions>) -> StoreError {
        match checked {
            Ok(_) => panic!("accepted"),
            Err(error) => error,
        }
    }

    #[test]
    fn an_empty_options_object_gives_the_defaults() {
        let checked = Options::default().check().unwrap();
        let default = StoreOptions::default();
        assert_eq!(checked.ttl_seconds, DEFAULT_TTL_SECONDS);
        assert_eq!(checked.list_limit as u64, DEFAULT_LIST_LIMIT);
        assert_eq!(checked.max_record_bytes as u64, DEFAULT_MAX_RECORD_BYTES);
        assert_eq!(checked.key_prefix, DEFAULT_KEY_PREFIX);
        assert_eq!(checked.command_timeout, default.command_timeout);
        assert_eq!(checked.connect_timeout, default.connect_timeout);
        assert_eq!(checked.health_check_interval, default.health_check_interval);
        assert_eq!(checked.retry, default.retry);
        assert_eq!(
            checked.retry.max.as_millis() as u64,
            DEFAULT_RETRY_MAX_DELAY_MS
        );
        assert_eq!(checked.cluster, DEFAULT_CLUSTER);
    }

    #[test]
    fn each_whole_number_option_takes_its_range_and_names_itself_outside_it() {
        for (name, set, range) in WHOLE_NUMBERS {
            let (min, max) = range.into_inner();
            for good in [min, max] {
                assert!(check(set, good as f64).is_ok(), "{name} = {good}");
            }
            let bad_values = [min as f64 - 1.0, max as f64 + 1.0, min as f64 + 0.5];
            for bad in bad_values.into_iter().chain([f64::NAN, f64::INFINITY]) {
                let error = refused(check(set, bad));
                let expected =
                    format!("{name}: expected a whole number from {min} to {max}, got {bad}");
                assert_eq!(error.message, expected);
            }
        }
    }

    #[test]
    fn rules_between_options() {
        let options = Options {
            retry_base_delay_ms: Some(500.0),
            retry_max_delay_ms: Some(100.0),
            ..Options::default()
        };
        let error = refused(options.check());
        assert!(
            error.message.starts_with("retry.maxDelayMs: "),
            "{}",
            error.message
        );
        let options = Options {
            key_prefix: Some("app".to_owned()),
            ..Options::default()
        };
        assert!(refused(options.check()).message.starts_with("keyPrefix: "));
    }
}
