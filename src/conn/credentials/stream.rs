//! The credentials as redis-rs reads them: one stream per `subscribe`, two per connection (the
//! first item authenticates a new connection; a task then reads the rest and re-authenticates
//! with each). redis-rs ends that task for good at the first refused re-authentication, and
//! only says so through the `log` crate; the stream sees it as being dropped while the
//! credentials it gave last are unconfirmed (redis-rs asks for the next item only after a
//! re-authentication worked), and reports the connection as stranded.

use std::pin::Pin;
use std::sync::Arc;

use futures_util::Stream;
use redis::{BasicAuth, RedisResult, StreamingCredentialsProvider};
use tokio::sync::watch;
use tokio::time::sleep;

use super::schedule::{stagger, unit};
use super::{Credentials, Current};
use crate::conn::backoff::jitter_seed;

/// The credentials as redis-rs subscribes to them, once per connection.
#[derive(Clone)]
pub(crate) struct Streaming(pub(super) Arc<Credentials>);

/// Where one connection's subscription stands.
struct Subscription {
    credentials: Arc<Credentials>,
    changes: watch::Receiver<Current>,
    /// The serial given last.
    seen: Option<u64>,
    /// Items given so far.
    items: u32,
    /// When the credentials the connection is known to hold expire.
    held_expiry: Option<f64>,
    /// A re-authentication given and not yet known to have worked: the expiry of what it
    /// carries.
    pending: Option<Option<f64>>,
}

impl Subscription {
    /// The first item: what a new connection authenticates with.
    async fn first(mut self) -> Option<(RedisResult<BasicAuth>, Subscription)> {
        loop {
            let (item, serial, expiry) = {
                let current = self.changes.borrow_and_update();
                (
                    self.credentials.for_new_connection(&current),
                    current.serial,
                    current.token.as_ref().and_then(|t| t.expires_at),
                )
            };
            if let Some(item) = item {
                self.seen = Some(serial);
                self.items = 1;
                self.held_expiry = expiry;
                return Some((item, self));
            }
            self.changes.changed().await.ok()?;
        }
    }

    /// Each later item: newer credentials, after this connection's own delay. Failures are
    /// not sent: the connection keeps what it has until it expires.
    async fn next_newer(mut self) -> Option<(RedisResult<BasicAuth>, Subscription)> {
        // Asked again: the last re-authentication worked.
        if let Some(expiry) = self.pending.take() {
            self.held_expiry = expiry;
        }
        loop {
            self.changes.changed().await.ok()?;
            let (serial, expires_at) = {
                let current = self.changes.borrow();
                let expires_at = current.token.as_ref().and_then(|t| t.expires_at);
                (current.serial, expires_at)
            };
            if self.seen.is_some_and(|seen| serial <= seen) {
                continue;
            }
            let now = self.credentials.clock.now_ms();
            let jitter = unit(jitter_seed());
            sleep(stagger(now, expires_at, self.held_expiry, jitter)).await;
            // The newest by now.
            let (serial, token) = {
                let current = self.changes.borrow_and_update();
                (current.serial, current.token.clone())
            };
            if let Some(token) = token {
                self.seen = Some(serial);
                self.items += 1;
                self.pending = Some(token.expires_at);
                let auth = self.credentials.auth(&token);
                return Some((Ok(auth), self));
            }
        }
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        // Dropped with a re-authentication unconfirmed: refused, or the connection died.
        if self.items >= 2 && self.pending.is_some() {
            if let Some(serial) = self.seen {
                self.credentials.strand(serial, self.held_expiry);
            }
        }
    }
}

impl StreamingCredentialsProvider for Streaming {
    fn subscribe(&self) -> Pin<Box<dyn Stream<Item = RedisResult<BasicAuth>> + Send + 'static>> {
        let subscription = Subscription {
            credentials: self.0.clone(),
            changes: self.0.current.subscribe(),
            seen: None,
            items: 0,
            held_expiry: None,
            pending: None,
        };
        Box::pin(futures_util::stream::unfold(
            subscription,
            |subscription| async move {
                if subscription.seen.is_none() {
                    subscription.first().await
                } else {
                    subscription.next_newer().await
                }
            },
        ))
    }
}
