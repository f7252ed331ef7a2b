//! The supervisor's core. One task per store owns the current connection. Calls borrow it; a
//! call that sees the connection fail (I/O error, `READONLY`, no reply by its deadline)
//! reports it, and the task replaces it with backoff.
//!
//! redis-rs' `ConnectionManager` reconnects only on errors it deems fatal, never on timeouts or
//! `READONLY`, and exposes no status: hence this small supervisor.
//!
//! The core knows calls, deadlines, generations, status and backoff (here), and what a failed
//! call says of the connection (`classify`). What differs between a standalone server and a
//! cluster sits behind two small traits (`parts`): a `Connector` makes a connection, a
//! `Watcher` watches the one in use until it must be replaced (see `conn::standalone` and
//! `conn::cluster`). `tests` drive the core with a fake of both on a paused clock.

mod classify;
mod parts;
mod vitals;

use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::runtime::Handle;
use tokio::sync::{watch, Notify};
use tokio::time::{sleep, timeout_at, Instant};

use super::backoff::jitter_seed;
use super::credentials::Credentials;
use super::health::{health_check, Ping};
use super::{ConnectionSettings, ServerAddress};
use crate::error::{StoreError, StoreResult};
use crate::log::Logger;

pub(crate) use classify::{call_failed, is_own_refusal, refused, server_error, CallError};
pub(crate) use parts::{Connector, Pause, Watcher};
pub(crate) use vitals::{ConnectionVitals, Vitals};

/// Where the connection stands, in ioredis' words.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Status {
    Connecting = 0,
    Ready = 1,
    Reconnecting = 2,
    End = 3,
}

impl Status {
    fn from_u8(value: u8) -> Status {
        match value {
            0 => Status::Connecting,
            1 => Status::Ready,
            2 => Status::Reconnecting,
            _ => Status::End,
        }
    }
}

#[derive(Clone)]
enum Link<C> {
    Down,
    Up { connection: C, generation: u64 },
    Closed,
}

/// What the task, the calls and the watcher share.
pub(crate) struct Core<C> {
    settings: ConnectionSettings,
    logger: Logger,
    connector: Arc<dyn Connector<C>>,
    watcher: Arc<dyn Watcher<C>>,
    link: watch::Sender<Link<C>>,
    status: AtomicU8,
    /// Generation of the connection last published.
    current: AtomicU64,
    /// Highest connection generation some call has found broken.
    broken: AtomicU64,
    /// Wakes the watcher: a call condemned the connection or found trouble.
    wake: Notify,
    closing: watch::Sender<bool>,
    /// `close()` began: calls that wait for a connection give up, calls on one finish.
    draining: AtomicBool,
    started: Instant,
    /// Milliseconds after `started` of the last reply from Redis.
    last_reply_ms: AtomicU64,
    /// A PING is checking the connection for a call that timed out with too little time
    /// to judge it (`probe`).
    probing: AtomicBool,
    /// What `stats()` reports of the connection.
    vitals: Vitals,
}

pub(crate) struct Supervisor<C> {
    core: Arc<Core<C>>,
    /// With the `credentials` option: what the connections authenticate with.
    credentials: Option<Arc<Credentials>>,
}

impl<C: Clone + Send + Sync + 'static> Supervisor<C> {
    /// Starts connecting in the background on `runtime`.
    pub(crate) fn start(
        settings: ConnectionSettings,
        logger: Logger,
        connector: Arc<dyn Connector<C>>,
        watcher: Arc<dyn Watcher<C>>,
        runtime: &Handle,
    ) -> Supervisor<C> {
        let core = Arc::new(Core {
            settings,
            logger,
            connector,
            watcher,
            link: watch::Sender::new(Link::Down),
            status: AtomicU8::new(Status::Connecting as u8),
            current: AtomicU64::new(0),
            broken: AtomicU64::new(0),
            wake: Notify::new(),
            closing: watch::Sender::new(false),
            draining: AtomicBool::new(false),
            started: Instant::now(),
            last_reply_ms: AtomicU64::new(0),
            probing: AtomicBool::new(false),
            vitals: Vitals::default(),
        });
        runtime.spawn(run(core.clone()));
        Supervisor {
            core,
            credentials: None,
        }
    }

    /// Keeps `credentials` fresh until the store closes, and closes the connection when they
    /// expire with nothing newer (see `Credentials::expire_connections`).
    pub(crate) fn rotate(&mut self, credentials: Arc<Credentials>, runtime: &Handle) {
        let (core, rotating) = (self.core.clone(), credentials.clone());
        runtime.spawn(async move {
            let settings = &core.settings;
            let rotation =
                rotating.rotate(&core.logger, settings.backoff, settings.connect_timeout);
            let expiry = rotating.expire_connections(|cause| core.condemn_current(cause));
            core.until_closed(futures_util::future::join(rotation, expiry))
                .await;
        });
        self.credentials = Some(credentials);
    }

    /// When the credentials in use expire, in epoch milliseconds.
    pub(crate) fn credentials_expire_at(&self) -> Option<f64> {
        self.credentials.as_ref()?.expires_at()
    }

    pub(crate) fn status(&self) -> Status {
        self.core.status()
    }

    pub(crate) fn address(&self) -> &ServerAddress {
        &self.core.settings.address
    }

    pub(crate) fn logger(&self) -> &Logger {
        &self.core.logger
    }

    /// Status, since when, reconnects and the last connection failure.
    pub(crate) fn vitals(&self) -> ConnectionVitals {
        let core = &self.core;
        core.vitals.read(core.status())
    }

    pub(crate) fn command_timeout(&self) -> Duration {
        self.core.settings.command_timeout
    }

    /// Resolves once connected, or fails after `connectTimeoutMs`.
    pub(crate) async fn ready(&self) -> StoreResult<()> {
        let deadline = Instant::now() + self.core.settings.connect_timeout;
        self.acquire(deadline).await.map(|_| ())
    }

    /// [`call_after`](Self::call_after) for a call made now that waits for nothing.
    #[cfg(test)]
    pub(crate) async fn call<T, F, Fut>(&self, call: F) -> StoreResult<T>
    where
        C: Ping,
        F: FnOnce(C, Instant) -> Fut,
        Fut: Future<Output = Result<T, CallError>>,
    {
        self.call_after(Instant::now(), std::future::ready(()), call)
            .await
    }

    /// Runs one store call, made at `made`: waits for `before` (the calls on its id it must
    /// follow), then for a connection, and runs `call` on it, all within `commandTimeoutMs` of
    /// `made`, and turns what failed into the store's error. `call` is told the deadline, so
    /// best-effort work (healing) can stop before it.
    pub(crate) async fn call_after<T, F, Fut>(
        &self,
        made: Instant,
        before: impl Future<Output = ()>,
        call: F,
    ) -> StoreResult<T>
    where
        C: Ping,
        F: FnOnce(C, Instant) -> Fut,
        Fut: Future<Output = Result<T, CallError>>,
    {
        let core = &self.core;
        let deadline = made + core.settings.command_timeout;
        if timeout_at(deadline, before).await.is_err() {
            let waited = core.settings.command_timeout.as_millis();
            return Err(StoreError::unavailable(format!(
                "not done within {waited} ms: an earlier call on the same id was still running"
            )));
        }
        let (connection, generation) = self.acquire(deadline).await?;
        let sent = Instant::now();
        // Out of time already (its wait took it all): nothing is sent, for a reply that could
        // not be waited for.
        if sent >= deadline {
            let waited = core.settings.command_timeout.as_millis();
            return Err(StoreError::unavailable(format!(
                "not sent within {waited} ms: the call waited for a connection or an earlier \
                 call on the same id"
            )));
        }
        let sent_ms = core.now_ms();
        match timeout_at(deadline, call(connection, deadline)).await {
            Ok(Ok(value)) => {
                core.saw_reply();
                Ok(value)
            }
            Ok(Err(CallError::Store(error))) => {
                core.saw_reply();
                Err(error)
            }
            Ok(Err(CallError::Redis(error))) => Err(core.classify(error, generation, sent_ms)),
            Err(_) => {
                let timeout = core.settings.command_timeout;
                let before = sent - made;
                let mut message = format!("no reply from Redis within {} ms", timeout.as_millis());
                if before >= Duration::from_millis(1) {
                    message += &format!(
                        " ({} ms of them waiting for a connection or an earlier call on the \
                         same id)",
                        before.as_millis()
                    );
                }
                // Only silence since this call was sent condemns the connection: a reply to
                // anything else meanwhile means a slow server, and a reconnect would not help.
                // And only silence long enough to mean something: a call sent with little of
                // its time left (after a long wait) proves nothing, so a PING with a whole
                // deadline judges the connection instead.
                if core.silent_since(sent_ms) {
                    if deadline - sent >= timeout / 2 {
                        core.connection_failed(generation, &message);
                    } else {
                        self.probe(generation);
                    }
                }
                Err(StoreError::unavailable(message))
            }
        }
    }

    /// PINGs connection `generation` (one PING at a time) and condemns it if nothing at all
    /// replied by the PING's deadline: for a call that timed out silent but was sent too late
    /// to judge the link, so that a dead connection is found within two `commandTimeoutMs`
    /// even when every call on it waited before it was sent.
    fn probe(&self, generation: u64)
    where
        C: Ping,
    {
        let core = &self.core;
        let connection = match &*core.link.borrow() {
            Link::Up {
                connection,
                generation: current,
            } if *current == generation => connection.clone(),
            _ => return,
        };
        if core.probing.swap(true, Ordering::AcqRel) {
            return;
        }
        let core = core.clone();
        tokio::spawn(async move {
            let mut connection = connection;
            let asked_ms = core.now_ms();
            // Ends at once when the store closes or the connection is condemned meanwhile:
            // the probe holds its connection no longer than the store does.
            let checked = health_check(&core, &mut connection);
            if let Some(Some(failure)) = core.unless_condemned(generation, checked).await {
                if failure.silent && core.silent_since(asked_ms) {
                    core.connection_failed(generation, &failure.cause);
                }
            }
            drop(connection);
            core.probing.store(false, Ordering::Release);
        });
    }

    /// Stops the supervisor and drops the connection; resolves once both are done.
    pub(crate) async fn close(&self) {
        self.core.closing.send_replace(true);
        let mut link = self.core.link.subscribe();
        let _ = link.wait_for(|l| matches!(l, Link::Closed)).await;
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.core.is_closing()
    }

    /// The first step of closing: calls waiting for a connection reject with `STORE_CLOSED`
    /// now; calls that have one run to their end.
    pub(crate) fn drain(&self) {
        self.core.draining.store(true, Ordering::Release);
        // Wakes every waiter so it sees the flag.
        self.core.link.send_modify(|_| {});
    }

    async fn acquire(&self, deadline: Instant) -> StoreResult<(C, u64)> {
        let core = &self.core;
        let mut link = core.link.subscribe();
        loop {
            match &*link.borrow_and_update() {
                Link::Up {
                    connection,
                    generation,
                } => return Ok((connection.clone(), *generation)),
                Link::Closed => return Err(StoreError::closed()),
                Link::Down if core.is_draining() => return Err(StoreError::closed()),
                Link::Down => {}
            }
            match timeout_at(deadline, link.changed()).await {
                Ok(Ok(())) => continue,
                Ok(Err(_)) => return Err(StoreError::closed()),
                Err(_) => return Err(core.not_connected()),
            }
        }
    }
}

impl<C> Drop for Supervisor<C> {
    fn drop(&mut self) {
        self.core.closing.send_replace(true);
    }
}

impl<C> Core<C> {
    pub(crate) fn status(&self) -> Status {
        Status::from_u8(self.status.load(Ordering::Acquire))
    }

    fn set_status(&self, status: Status) {
        self.swap_status(status);
    }

    fn now_ms(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }

    /// Nothing replied since `sent_ms`.
    fn silent_since(&self, sent_ms: u64) -> bool {
        self.last_reply_ms.load(Ordering::Relaxed) < sent_ms
    }

    fn not_connected(&self) -> StoreError {
        let address = &self.settings.address;
        match self.vitals.last_cause() {
            Some(cause) => {
                StoreError::unavailable(format!("not connected to Redis at {address}: {cause}"))
            }
            None => StoreError::unavailable(format!("not connected to Redis at {address} yet")),
        }
    }

    fn is_closing(&self) -> bool {
        *self.closing.borrow()
    }

    fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Acquire) || self.is_closing()
    }

    fn is_condemned(&self, generation: u64) -> bool {
        self.broken.load(Ordering::Acquire) >= generation
    }

    /// Connection `generation` is unusable: the task replaces it, once. Reports of a
    /// connection already replaced change nothing.
    pub(crate) fn condemn(&self, generation: u64, cause: &str) {
        if self.broken.fetch_max(generation, Ordering::AcqRel) >= generation {
            return;
        }
        self.set_last_error(cause);
        // New calls wait for the replacement instead of trying the dead connection.
        self.link.send_if_modified(|link| match link {
            Link::Up {
                generation: current,
                ..
            } if *current == generation => {
                *link = Link::Down;
                self.set_status(Status::Reconnecting);
                true
            }
            _ => false,
        });
        self.logger.warn(format!("connection lost: {cause}"));
        self.wake.notify_one();
    }

    /// A call found connection `generation` unusable: its watcher decides what that means.
    fn connection_failed(&self, generation: u64, cause: &str) {
        self.watcher.call_failed(self, generation, cause);
    }
}

/// The task: connects, publishes the connection, has the watcher watch it, and reconnects
/// with backoff when it fails, until the store closes.
async fn run<C: Clone + Send + Sync + 'static>(core: Arc<Core<C>>) {
    let mut generation = 0u64;
    let mut attempt = 0u32;
    let mut connected_once = false;
    while !core.is_closing() {
        let connecting = core.connect_in_time(core.connector.connect(&core));
        let Some(connected) = core.until_closed(connecting).await else {
            break;
        };
        match connected {
            Ok(mut connection) => {
                let connected_at = Instant::now();
                let address = &core.settings.address;
                let verb = if connected_once {
                    "reconnected"
                } else {
                    "connected"
                };
                core.logger.info(format!("{verb} to {address}"));
                if connected_once {
                    core.vitals.reconnected();
                }
                connected_once = true;
                loop {
                    generation += 1;
                    core.current.store(generation, Ordering::Release);
                    core.saw_reply();
                    // Status first: a caller that reads 'ready' finds the link up, or about to be.
                    core.set_status(Status::Ready);
                    core.link.send_replace(Link::Up {
                        connection: connection.clone(),
                        generation,
                    });
                    match core.watcher.watch(&core, connection, generation).await {
                        // A replacement the watcher built takes over without a gap.
                        Some(replacement) => {
                            core.vitals.reconnected();
                            connection = replacement;
                        }
                        None => break,
                    }
                }
                // A connection that dies at once (a replica answering READONLY, a server that
                // drops us) must not reset the backoff, or reconnects would spin.
                if connected_at.elapsed() >= core.settings.backoff.max {
                    attempt = 0;
                }
                if core.is_closing() {
                    break;
                }
                core.link.send_replace(Link::Down);
                core.set_status(Status::Reconnecting);
            }
            Err(cause) => {
                // stats() shows the failure by the time its line is logged.
                core.set_last_error(&cause);
                core.logger.warn(format!("connection failed: {cause}"));
            }
        }
        attempt += 1;
        let delay = core.settings.backoff.delay(attempt, jitter_seed());
        core.logger.info(format!(
            "reconnecting (attempt {attempt}) in {} ms",
            delay.as_millis()
        ));
        if core.until_closed(sleep(delay)).await.is_none() {
            break;
        }
    }
    core.set_status(Status::End);
    core.link.send_replace(Link::Closed);
}

#[cfg(test)]
mod tests;
