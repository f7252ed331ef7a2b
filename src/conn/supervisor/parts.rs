//! What the core asks of a kind of connection, and what it offers in return: a `Connector`
//! makes connections, a `Watcher` watches the one in use; both are given the core.

use std::future::Future;
use std::sync::atomic::Ordering;
use std::time::Duration;

use futures_util::future::BoxFuture;
use tokio::time::{sleep, timeout};

use super::{Core, Status};
use crate::conn::ConnectionSettings;
use crate::log::Logger;

/// Makes connections: to a standalone server, to a cluster, or a test's fake.
pub(crate) trait Connector<C>: Send + Sync {
    /// One attempt at a connection that answered. The core gives up on it after
    /// `connectTimeoutMs`.
    fn connect<'a>(&'a self, core: &'a Core<C>) -> BoxFuture<'a, Result<C, String>>;
}

/// Watches the connection in use: one for a standalone server, one for a cluster.
pub(crate) trait Watcher<C>: Send + Sync {
    /// Returns when `connection` must be replaced: with the replacement when the watcher built
    /// one (it takes over without a gap), with `None` when the connection failed (the core
    /// reconnects with backoff) or the store closes.
    fn watch<'a>(
        &'a self,
        core: &'a Core<C>,
        connection: C,
        generation: u64,
    ) -> BoxFuture<'a, Option<C>>;

    /// A call found connection `generation` broken: an I/O error, `READONLY`, no reply.
    fn call_failed(&self, core: &Core<C>, generation: u64, cause: &str);
}

/// What ended a watcher's pause.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Pause {
    Elapsed,
    /// A call reported trouble that did not condemn the connection.
    Woken,
}

/// What connectors and watchers use of the core.
impl<C> Core<C> {
    pub(crate) fn settings(&self) -> &ConnectionSettings {
        &self.settings
    }

    pub(crate) fn logger(&self) -> &Logger {
        &self.logger
    }

    /// Sets the status; returns the one it replaces.
    pub(crate) fn swap_status(&self, status: Status) -> Status {
        let previous = Status::from_u8(self.status.swap(status as u8, Ordering::AcqRel));
        if previous != status {
            self.vitals.status_changed();
        }
        previous
    }

    pub(crate) fn saw_reply(&self) {
        self.last_reply_ms.store(self.now_ms(), Ordering::Relaxed);
    }

    pub(crate) fn idle_for(&self) -> Duration {
        let last = self.last_reply_ms.load(Ordering::Relaxed);
        Duration::from_millis(self.now_ms().saturating_sub(last))
    }

    pub(crate) fn set_last_error(&self, cause: &str) {
        self.vitals.failed(cause);
    }

    /// `generation` is the connection last published: a call still running on one since
    /// replaced says nothing of the new one.
    pub(crate) fn is_current(&self, generation: u64) -> bool {
        generation == self.current.load(Ordering::Acquire)
    }

    /// Condemns whichever connection is in use: its credentials expired.
    pub(crate) fn condemn_current(&self, cause: &str) {
        self.condemn(self.current.load(Ordering::Acquire), cause);
    }

    /// Has the watcher look now: a call found trouble.
    pub(crate) fn wake_watcher(&self) {
        self.wake.notify_one();
    }

    /// Waits `delay`, or less when a call reports trouble; `None` when the store closes or a
    /// call condemned connection `generation`.
    pub(crate) async fn pause(&self, generation: u64, delay: Duration) -> Option<Pause> {
        let mut closing = self.closing.subscribe();
        tokio::select! {
            _ = closing.wait_for(|c| *c) => None,
            _ = self.wake.notified() => {
                (!self.is_condemned(generation)).then_some(Pause::Woken)
            }
            _ = sleep(delay) => Some(Pause::Elapsed),
        }
    }

    /// Runs `work` to its end; `None` when the store closes or a call condemns connection
    /// `generation` first (a call may find it dead while a PING is still waiting).
    pub(crate) async fn unless_condemned<T>(
        &self,
        generation: u64,
        work: impl Future<Output = T>,
    ) -> Option<T> {
        let mut closing = self.closing.subscribe();
        tokio::pin!(work);
        loop {
            tokio::select! {
                done = &mut work => return Some(done),
                _ = closing.wait_for(|c| *c) => return None,
                _ = self.wake.notified() => {
                    if self.is_condemned(generation) {
                        return None;
                    }
                }
            }
        }
    }

    /// Runs `work` to its end; `None` when the store closes first.
    pub(crate) async fn until_closed<T>(&self, work: impl Future<Output = T>) -> Option<T> {
        let mut closing = self.closing.subscribe();
        tokio::select! {
            done = work => Some(done),
            _ = closing.wait_for(|c| *c) => None,
        }
    }

    /// A connection attempt under `connectTimeoutMs`, whose expiry names the cause.
    pub(crate) async fn connect_in_time<T>(
        &self,
        attempt: impl Future<Output = Result<T, String>>,
    ) -> Result<T, String> {
        let limit = self.settings.connect_timeout;
        match timeout(limit, attempt).await {
            Ok(result) => result,
            Err(_) => Err(format!("no connection within {} ms", limit.as_millis())),
        }
    }
}
