//! Credentials from a provider (Microsoft Entra ID tokens, or any source of a user name and a
//! password that expires): fetched before the first connection, fetched again before they
//! expire (`schedule`), and streamed to every connection through redis-rs's
//! `StreamingCredentialsProvider`. A new connection authenticates with the newest credentials;
//! a live one re-authenticates (`AUTH` on the same connection) when newer ones arrive, after
//! its own small delay. Nothing here logs or formats a password.

mod schedule;
mod stream;
#[cfg(test)]
mod tests;

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures_util::future::BoxFuture;
use redis::{BasicAuth, ErrorKind, RedisError, RedisResult};
use tokio::sync::{watch, Notify};
use tokio::time::{sleep_until, timeout, Instant};

use super::backoff::{jitter_seed, Backoff};
use crate::log::Logger;
use schedule::{millis, refresh_in, unit, Lifetime, MARGIN_MS};
pub(crate) use stream::Streaming;

/// One set of credentials as the provider gave them; times in epoch milliseconds.
#[derive(Clone)]
pub struct Token {
    pub username: Option<String>,
    pub password: String,
    pub expires_at: Option<f64>,
    /// When to fetch new ones (Azure's `refreshAfterTimestamp`); before `expires_at`.
    pub refresh_at: Option<f64>,
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Token")
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .field("expires_at", &self.expires_at)
            .field("refresh_at", &self.refresh_at)
            .finish()
    }
}

/// The latest time a JavaScript `Date` can hold, in epoch milliseconds.
const LATEST_DATE_MS: f64 = 8.64e15;

/// The longest provider failure quoted in a message or a log line.
const MAX_CAUSE_CHARS: usize = 300;

impl Token {
    /// What makes a result usable, checked as it arrives; the message never quotes a value.
    fn check(self, now: f64) -> Result<Token, String> {
        if self.password.is_empty() {
            return Err("its result has an empty password".to_owned());
        }
        if self.username.as_deref() == Some("") {
            return Err("its result has an empty username".to_owned());
        }
        for (name, time) in [
            ("expiresAt", self.expires_at),
            ("refreshAt", self.refresh_at),
        ] {
            if time.is_some_and(|t| !t.is_finite()) {
                return Err(format!("its {name} is not a finite number"));
            }
            if time.is_some_and(|t| t > LATEST_DATE_MS) {
                return Err(format!(
                    "its {name} is past the year 275760 (expected epoch milliseconds)"
                ));
            }
        }
        if let Some(expires_at) = self.expires_at.filter(|e| *e <= now) {
            let ago = ((now - expires_at) / 1000.0).round();
            return Err(format!(
                "it returned credentials that expired {ago} s ago (expiresAt is in epoch \
                 milliseconds)"
            ));
        }
        Ok(self)
    }
}

/// Where credentials come from: the `credentials` option.
pub trait CredentialSource: Send + Sync + 'static {
    /// The newest credentials, or why there are none (a message without secrets).
    fn fetch(&self) -> BoxFuture<'static, Result<Token, String>>;
}

/// The `credentials` option as the store is given it.
#[derive(Clone)]
pub struct CredentialsProvider(pub Arc<dyn CredentialSource>);

impl fmt::Debug for CredentialsProvider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("CredentialsProvider")
    }
}

/// Epoch milliseconds on the runtime's clock (which tests pause and advance).
#[derive(Clone, Copy)]
struct Clock {
    epoch_ms: f64,
    start: Instant,
}

impl Clock {
    fn new() -> Clock {
        let epoch_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs_f64() * 1000.0)
            .unwrap_or(0.0);
        Clock {
            epoch_ms,
            start: Instant::now(),
        }
    }

    fn now_ms(&self) -> f64 {
        self.epoch_ms + self.start.elapsed().as_secs_f64() * 1000.0
    }

    fn instant_at(&self, epoch_ms: f64) -> Instant {
        Instant::now() + millis(epoch_ms - self.now_ms())
    }
}

/// The newest credentials, as every connection reads them.
#[derive(Clone, Default)]
struct Current {
    /// Counts the credentials received: a connection re-authenticates when it sees a newer one.
    serial: u64,
    token: Option<Arc<Token>>,
    /// Why the last fetch failed, when it did.
    failure: Option<String>,
}

/// A live connection whose re-authentication redis-rs gave up on (the server refused it, or
/// the connection died meanwhile): redis-rs never re-authenticates it again, so it must be
/// replaced before the credentials it still has expire.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Stranded {
    /// The newest serial one was refused (or given) when it stopped.
    serial: u64,
    /// When to replace it at the latest (epoch ms): before what it has expires.
    deadline: Option<f64>,
}

/// The provider, the credentials it gave last, and the rotation that keeps them fresh.
pub(crate) struct Credentials {
    source: Arc<dyn CredentialSource>,
    /// The URL's user name, for a provider that names none.
    url_username: Option<String>,
    clock: Clock,
    current: watch::Sender<Current>,
    stranded: watch::Sender<Option<Stranded>>,
    /// Asks the rotation to fetch again soon: a server refused the newest credentials.
    refused: Notify,
}

impl Credentials {
    pub(crate) fn new(provider: CredentialsProvider, url_username: Option<String>) -> Arc<Self> {
        Arc::new(Credentials {
            source: provider.0,
            url_username,
            clock: Clock::new(),
            current: watch::Sender::new(Current::default()),
            stranded: watch::Sender::new(None),
            refused: Notify::new(),
        })
    }

    /// The server refused the credentials a new connection authenticated with: fetch again
    /// soon, with backoff, rather than at the scheduled refresh.
    pub(crate) fn refused_by_server(&self) {
        self.refused.notify_one();
    }

    /// A connection stopped re-authenticating after it was given `serial` while it held
    /// credentials expiring at `held_expiry`: fetch again soon (the server may have refused
    /// the newest), and replace the connection once newer ones arrive, or before what it
    /// holds expires.
    fn strand(&self, serial: u64, held_expiry: Option<f64>) {
        let now = self.clock.now_ms();
        let deadline = held_expiry.map(|at| at - MARGIN_MS.min(((at - now) / 2.0).max(0.0)));
        self.stranded.send_modify(|stranded| {
            *stranded = Some(match *stranded {
                Some(before) => Stranded {
                    serial: serial.max(before.serial),
                    deadline: match (before.deadline, deadline) {
                        (Some(a), Some(b)) => Some(a.min(b)),
                        (a, b) => a.or(b),
                    },
                },
                None => Stranded { serial, deadline },
            })
        });
        self.refused.notify_one();
    }

    /// When the current credentials expire, in epoch milliseconds.
    pub(crate) fn expires_at(&self) -> Option<f64> {
        self.current.borrow().token.as_ref()?.expires_at
    }

    fn is_expired(&self, token: &Token) -> bool {
        token.expires_at.is_some_and(|e| e <= self.clock.now_ms())
    }

    fn auth(&self, token: &Token) -> BasicAuth {
        let username = token
            .username
            .clone()
            .or_else(|| self.url_username.clone())
            .unwrap_or_else(|| "default".to_owned());
        BasicAuth::new(username, token.password.clone())
    }

    /// Why a connection cannot authenticate now, naming the provider's failure.
    fn unavailable(&self, current: &Current) -> String {
        let failure = current.failure.as_deref().unwrap_or("no answer yet");
        match current.token.as_ref().and_then(|t| t.expires_at) {
            Some(at) => {
                let ago = ((self.clock.now_ms() - at) / 1000.0).max(0.0).round();
                format!("the credentials expired {ago} s ago and the credentials provider failed: {failure}")
            }
            _ => format!("no credentials: the credentials provider failed: {failure}"),
        }
    }

    /// What a new connection authenticates with: the current credentials while they last; the
    /// provider's failure once they are gone; `None` to wait for the provider's first answer.
    fn for_new_connection(&self, current: &Current) -> Option<RedisResult<BasicAuth>> {
        match &current.token {
            Some(token) if !self.is_expired(token) => Some(Ok(self.auth(token))),
            _ if current.failure.is_some() => Some(Err(RedisError::from((
                ErrorKind::AuthenticationFailed,
                "credentials unavailable",
                self.unavailable(current),
            )))),
            _ => None,
        }
    }

    /// Fetches credentials, and again before they expire, until the store closes (the caller
    /// drops this future). A failed fetch is retried with `backoff`; each fetch has
    /// `fetch_limit` to answer. No fetch follows another sooner than `backoff.base`, and the
    /// wait grows with `backoff` while the provider returns the credentials it gave last
    /// (those are no rotation: no new serial, no re-authentication, no log line).
    pub(crate) async fn rotate(&self, logger: &Logger, backoff: Backoff, fetch_limit: Duration) {
        let (mut failures, mut unchanged, mut refusals) = (0u32, 0u32, 0u32);
        loop {
            let outcome = match timeout(fetch_limit, self.source.fetch()).await {
                Ok(Ok(token)) => token.check(self.clock.now_ms()),
                Ok(Err(cause)) => Err(cause),
                Err(_) => Err(format!("no answer within {} ms", fetch_limit.as_millis())),
            };
            let wait = match outcome {
                Ok(token) => {
                    failures = 0;
                    let now = self.clock.now_ms();
                    let lifetime = Lifetime {
                        expires_at: token.expires_at,
                        refresh_at: token.refresh_at,
                    };
                    let Some(next) = refresh_in(now, lifetime, unit(jitter_seed())) else {
                        self.publish(logger, token, None);
                        return;
                    };
                    let same = self.current.borrow().token.as_ref().is_some_and(|held| {
                        held.username == token.username && held.password == token.password
                    });
                    if same {
                        unchanged += 1;
                        let wait = next.max(backoff.delay(unchanged, jitter_seed()));
                        self.current.send_modify(|current| {
                            current.token = Some(Arc::new(token));
                            current.failure = None;
                        });
                        wait
                    } else {
                        (unchanged, refusals) = (0, 0);
                        let wait = next.max(backoff.base);
                        self.publish(logger, token, Some(wait));
                        wait
                    }
                }
                Err(cause) => {
                    failures += 1;
                    let cause: String = cause.chars().take(MAX_CAUSE_CHARS).collect();
                    let delay = backoff.delay(failures, jitter_seed());
                    self.current
                        .send_modify(|current| current.failure = Some(cause.clone()));
                    logger.warn(self.failed(&cause, delay));
                    delay
                }
            };
            let deadline = Instant::now() + wait;
            tokio::select! {
                _ = sleep_until(deadline) => {}
                _ = self.refused.notified() => {
                    // A server refused the credentials: ask again soon, with backoff.
                    refusals += 1;
                    let soon = Instant::now() + backoff.delay(refusals, jitter_seed());
                    sleep_until(soon.min(deadline)).await;
                }
            }
        }
    }

    /// New credentials for every connection, under a new serial.
    fn publish(&self, logger: &Logger, token: Token, next: Option<Duration>) {
        logger.info(self.received(&token, next));
        self.current.send_modify(|current| {
            current.serial += 1;
            current.token = Some(Arc::new(token));
            current.failure = None;
        });
    }

    /// The `[STORE]` line of a fetch that worked: never the password.
    fn received(&self, token: &Token, next: Option<Duration>) -> String {
        let verb = if self.current.borrow().serial == 0 {
            "credentials received"
        } else {
            "credentials rotated"
        };
        let user = token
            .username
            .as_deref()
            .map(|u| format!(" for user {u}"))
            .unwrap_or_default();
        match (token.expires_at, next) {
            (Some(at), Some(next)) => format!(
                "{verb}{user}: they expire in {} s; next refresh in {} s",
                seconds(at - self.clock.now_ms()),
                seconds(next.as_secs_f64() * 1000.0)
            ),
            _ => format!("{verb}{user}: they do not expire"),
        }
    }

    /// The `[STORE]` warning of a fetch that failed.
    fn failed(&self, cause: &str, retry: Duration) -> String {
        let current = self.current.borrow();
        let state = match current.token.as_ref().and_then(|t| t.expires_at) {
            Some(at) if at > self.clock.now_ms() => format!(
                "the current credentials expire in {} s",
                seconds(at - self.clock.now_ms())
            ),
            Some(_) => {
                "the current credentials have expired: calls fail until it answers".to_owned()
            }
            None if current.token.is_some() => "the current credentials do not expire".to_owned(),
            None => "no credentials yet".to_owned(),
        };
        format!(
            "credentials provider failed: {cause}; {state}; retrying in {} ms",
            retry.as_millis()
        )
    }

    /// Closes the store's connection when its credentials expire with nothing newer, as Azure
    /// does: calls then wait for a new connection, which cannot authenticate until the provider
    /// answers, and fail with its failure. Also replaces a connection that stopped
    /// re-authenticating (`strand`) as soon as newer credentials arrive, or before what it
    /// holds expires. `condemn` closes the connection in use. Runs until the store closes.
    pub(crate) async fn expire_connections(&self, condemn: impl Fn(&str)) {
        let mut changes = self.current.subscribe();
        let mut strandings = self.stranded.subscribe();
        let mut expired_serial = None;
        loop {
            let (serial, expiry) = {
                let current = changes.borrow_and_update();
                let expiry = current.token.as_ref().and_then(|t| t.expires_at);
                (current.serial, expiry.map(|at| self.clock.instant_at(at)))
            };
            let stranded = *strandings.borrow_and_update();
            if stranded.is_some_and(|s| serial > s.serial) {
                self.stranded.send_replace(None);
                condemn(STRANDED);
                continue;
            }
            let expiry = expiry.filter(|_| expired_serial != Some(serial));
            let replace = stranded.and_then(|s| s.deadline);
            let replace = replace.map(|at| self.clock.instant_at(at));
            let never = Instant::now() + millis(f64::INFINITY);
            tokio::select! {
                _ = sleep_until(expiry.unwrap_or(never)), if expiry.is_some() => {
                    expired_serial = Some(serial);
                    let cause = self.unavailable(&self.current.borrow());
                    condemn(&cause);
                }
                _ = sleep_until(replace.unwrap_or(never)), if replace.is_some() => {
                    self.stranded.send_replace(None);
                    condemn(STRANDED);
                }
                changed = changes.changed() => if changed.is_err() { return },
                changed = strandings.changed() => if changed.is_err() { return },
            }
        }
    }

    /// The stream redis-rs reads for one connection.
    pub(crate) fn streaming(self: &Arc<Self>) -> Streaming {
        Streaming(self.clone())
    }
}

/// Why a connection is replaced before its credentials expire.
const STRANDED: &str =
    "a connection stopped re-authenticating (the server refused new credentials): replacing it";

fn seconds(ms: f64) -> String {
    format!("{:.1}", (ms / 1000.0).max(0.0))
}
