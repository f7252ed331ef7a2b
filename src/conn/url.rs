//! Parsing of the `rediss://` URL. Credentials are kept out of every message.

use std::fmt;

use crate::error::{StoreError, StoreResult};

/// Where and as whom to connect, from a `rediss://[user[:password]@]host[:port][/db]` URL.
#[derive(Clone, PartialEq, Eq)]
pub struct ServerAddress {
    pub host: String,
    pub port: u16,
    pub username: Option<String>,
    pub password: Option<String>,
    pub db: i64,
}

/// Azure Cache for Redis serves TLS on 6380.
pub const DEFAULT_TLS_PORT: u16 = 6380;

/// Azure Managed Redis serves TLS on 10000 (its OSS-policy shards on 85xx, learned from the
/// cluster).
pub const AZURE_MANAGED_REDIS_PORT: u16 = 10000;

/// The host suffix of Azure Managed Redis caches (`<name>.<region>.redis.azure.net`).
const AZURE_MANAGED_REDIS_SUFFIX: &str = ".redis.azure.net";

/// The port a URL without one means: 10000 for an Azure Managed Redis host, else 6380.
/// `host` is lower-case already; a trailing dot (a fully qualified name) is the same host.
fn default_port(host: &str) -> u16 {
    let host = host.strip_suffix('.').unwrap_or(host);
    match host.strip_suffix(AZURE_MANAGED_REDIS_SUFFIX) {
        Some(name) if !name.is_empty() => AZURE_MANAGED_REDIS_PORT,
        _ => DEFAULT_TLS_PORT,
    }
}

impl fmt::Debug for ServerAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerAddress")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("username", &self.username.as_ref().map(|_| "<redacted>"))
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("db", &self.db)
            .finish()
    }
}

impl fmt::Display for ServerAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

fn bad_url(reason: &str) -> StoreError {
    StoreError::invalid_config(format!("redisUrl: {reason}"))
}

impl ServerAddress {
    pub fn parse(url: &str) -> StoreResult<ServerAddress> {
        let url = url.trim();
        if url.is_empty() {
            return Err(bad_url("expected a rediss:// URL, got an empty string"));
        }
        let Some((scheme, rest)) = url.split_once("://") else {
            return Err(bad_url("expected a rediss:// URL"));
        };
        if !scheme.eq_ignore_ascii_case("rediss") {
            let shown = if scheme.len() <= 16 { scheme } else { "?" };
            return Err(bad_url(&format!(
                "only rediss:// (TLS) is accepted, got {shown}://"
            )));
        }
        if rest.contains('#') {
            // redis-rs reads `#insecure` as "skip certificate checks": never allowed here.
            return Err(bad_url("a URL fragment is not accepted"));
        }
        if rest.contains('?') {
            return Err(bad_url("query parameters are not accepted"));
        }
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i + 1..]),
            None => (rest, ""),
        };
        let (userinfo, host_port) = match authority.rfind('@') {
            Some(i) => (Some(&authority[..i]), &authority[i + 1..]),
            None => (None, authority),
        };
        let (username, password) = match userinfo {
            None => (None, None),
            Some(info) => {
                let (user, pass) = match info.split_once(':') {
                    Some((u, p)) => (u, Some(p)),
                    None => (info, None),
                };
                let user =
                    percent_decode(user).ok_or_else(|| bad_url("bad %-escape in the user name"))?;
                let pass = pass
                    .map(|p| {
                        percent_decode(p).ok_or_else(|| bad_url("bad %-escape in the password"))
                    })
                    .transpose()?;
                (
                    (!user.is_empty()).then_some(user),
                    pass.filter(|p| !p.is_empty()),
                )
            }
        };
        let (host, port) = split_host_port(host_port)?;
        let db = match path.trim_end_matches('/') {
            "" => 0,
            db => db
                .parse::<i64>()
                .ok()
                .filter(|n| *n >= 0)
                .ok_or_else(|| bad_url("the path must be a database number"))?,
        };
        Ok(ServerAddress {
            host,
            port,
            username,
            password,
            db,
        })
    }
}

fn split_host_port(host_port: &str) -> StoreResult<(String, u16)> {
    let (host, port) = if let Some(bracketed) = host_port.strip_prefix('[') {
        let end = bracketed
            .find(']')
            .ok_or_else(|| bad_url("unclosed [ in an IPv6 host"))?;
        let after = &bracketed[end + 1..];
        let port = match after {
            "" => None,
            p => Some(p.strip_prefix(':').ok_or_else(|| bad_url("bad host"))?),
        };
        let ip = &bracketed[..end];
        if ip.parse::<std::net::Ipv6Addr>().is_err() {
            return Err(bad_url("a bracketed host must be an IPv6 address"));
        }
        (ip, port)
    } else {
        match host_port.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (host_port, None),
        }
    };
    if host.is_empty() {
        return Err(bad_url("the host is missing"));
    }
    let valid_host = host
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | ':'));
    if !valid_host {
        return Err(bad_url("the host has characters a host name cannot have"));
    }
    let host = host.to_ascii_lowercase();
    let port = match port {
        None | Some("") => default_port(&host),
        Some(p) => p
            .parse::<u16>()
            .ok()
            .filter(|p| *p != 0)
            .ok_or_else(|| bad_url("the port must be a number from 1 to 65535"))?,
    };
    Ok((host, port))
}

fn percent_decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = text.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_azure_style_url_with_access_key() {
        let a = ServerAddress::parse("rediss://:s%40cret@cache.redis.cache.windows.net:6380/2")
            .unwrap();
        assert_eq!(a.host, "cache.redis.cache.windows.net");
        assert_eq!(a.port, 6380);
        assert_eq!(a.username, None);
        assert_eq!(a.password.as_deref(), Some("s@cret"));
        assert_eq!(a.db, 2);
    }

    #[test]
    fn defaults_to_port_6380_and_db_0() {
        let a = ServerAddress::parse("rediss://localhost").unwrap();
        assert_eq!((a.port, a.db), (6380, 0));
        let a = ServerAddress::parse("rediss://user:pw@[::1]:7000/").unwrap();
        assert_eq!((a.host.as_str(), a.port), ("::1", 7000));
        assert_eq!(a.username.as_deref(), Some("user"));
        assert_eq!(a.to_string(), "[::1]:7000");
    }

    #[test]
    fn azure_managed_redis_hosts_default_to_port_10000() {
        for url in [
            "rediss://cache.westeurope.redis.azure.net",
            "rediss://:key@Cache.WestEurope.Redis.Azure.Net/",
            "rediss://oid:token@cache.eastus.redis.azure.net/0",
            "rediss://cache.eastus.redis.azure.net.",
        ] {
            assert_eq!(ServerAddress::parse(url).unwrap().port, 10000, "{url}");
        }
        // Only the exact suffix, on a name boundary; anything else is Azure Cache for Redis' 6380.
        for url in [
            "rediss://cache.redis.cache.windows.net",
            "rediss://redis.azure.net",
            "rediss://.redis.azure.net",
            "rediss://cache.redis.azure.net.evil.example",
            "rediss://cacheredis.azure.net",
            "rediss://cache.redis.azure.network",
            "rediss://cache.notredis.azure.net",
            "rediss://10.0.0.4",
        ] {
            assert_eq!(ServerAddress::parse(url).unwrap().port, 6380, "{url}");
        }
        // An explicit port always wins.
        let a = ServerAddress::parse("rediss://cache.eastus.redis.azure.net:8500").unwrap();
        assert_eq!(a.port, 8500);
        let a = ServerAddress::parse("rediss://cache.eastus.redis.azure.net:").unwrap();
        assert_eq!(a.port, 10000);
    }

    #[test]
    fn rejects_plaintext_and_insecure_urls() {
        for url in [
            "redis://localhost:6379",
            "rediss://localhost:6380/#insecure",
            "http://x",
            "localhost:6380",
            "",
            "rediss://",
            "rediss://:pw@:6380",
            "rediss://host:0",
            "rediss://host:99999",
            "rediss://host/abc",
            "rediss://host?timeout=1",
            "rediss://ho st",
            "rediss://[abc]:7000",
        ] {
            let err = ServerAddress::parse(url).unwrap_err();
            assert_eq!(err.code, crate::error::ErrorCode::InvalidConfig, "{url}");
        }
    }

    #[test]
    fn messages_and_debug_never_show_the_password() {
        let err = ServerAddress::parse("redis://:hunter2@host:1").unwrap_err();
        assert!(!err.message.contains("hunter2"));
        let err = ServerAddress::parse("rediss://:hunter2@host:notaport").unwrap_err();
        assert!(!err.message.contains("hunter2"));
        let a = ServerAddress::parse("rediss://bob:hunter2@host").unwrap();
        assert!(!format!("{a:?} {a}").contains("hunter2"));
    }
}
