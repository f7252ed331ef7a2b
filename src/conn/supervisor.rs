//! One task per store owns the current connection. Calls borrow it; a call that sees the
//! connection fail (I/O error, `READONLY`, no reply by its deadline) reports it, and the task
//! replaces it with backoff. An idle connection is PINGed so a half-open one is found too.
//!
//! redis-rs' `ConnectionManager` reconnects only on errors it deems fatal, never on timeouts or
//! `READONLY`, and exposes no status: hence this small supervisor.
//!
//! A cluster connection is one redis-rs cluster client, which reconnects nodes after errors by
//! itself. The task checks the primary of every slot each interval, and builds a new client
//! when one stays silent (redis-rs keeps a half-open connection) or when nodes appear that
//! the client in use cannot verify (see `node_names`).

use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::future::join_all;
use redis::{AsyncConnectionConfig, ErrorKind, RedisError};
use tokio::runtime::Handle;
use tokio::sync::{watch, Notify};
use tokio::time::{sleep, timeout, timeout_at, Instant};

use super::backoff::jitter_seed;
use super::client::{build_client, cluster_client, ClusterTarget, RedisClient};
use super::node_names::{parse_cluster_nodes, Routes};
use super::{Connection, ConnectionSettings, Logger, ServerAddress};
use crate::error::{describe_chain, StoreError, StoreResult};

/// `status`, in ioredis' words.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreStatus {
    Connecting = 0,
    Ready = 1,
    Reconnecting = 2,
    End = 3,
}

impl StoreStatus {
    fn from_u8(value: u8) -> StoreStatus {
        match value {
            0 => StoreStatus::Connecting,
            1 => StoreStatus::Ready,
            2 => StoreStatus::Reconnecting,
            _ => StoreStatus::End,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            StoreStatus::Connecting => "connecting",
            StoreStatus::Ready => "ready",
            StoreStatus::Reconnecting => "reconnecting",
            StoreStatus::End => "end",
        }
    }
}

/// What a call's round trips can fail with: Redis, or a rule of the store.
#[derive(Debug)]
pub enum CallError {
    Redis(RedisError),
    Store(StoreError),
}

impl From<RedisError> for CallError {
    fn from(error: RedisError) -> Self {
        CallError::Redis(error)
    }
}

impl From<StoreError> for CallError {
    fn from(error: StoreError) -> Self {
        CallError::Store(error)
    }
}

#[derive(Clone)]
enum Link {
    Down,
    Up {
        connection: Connection,
        generation: u64,
    },
    Closed,
}

struct Shared {
    settings: ConnectionSettings,
    client: RedisClient,
    logger: Logger,
    link: watch::Sender<Link>,
    status: AtomicU8,
    /// Generation of the connection last published.
    current: AtomicU64,
    /// Highest connection generation some call has found broken.
    broken: AtomicU64,
    broken_signal: Notify,
    closing: watch::Sender<bool>,
    /// `close()` began: calls that wait for a connection give up, calls on one finish.
    draining: AtomicBool,
    started: Instant,
    /// Milliseconds after `started` of the last reply from Redis.
    last_reply_ms: AtomicU64,
    last_error: Mutex<Option<String>>,
    topology: Mutex<Topology>,
    /// The seed's refusal of `CLUSTER NODES` was logged.
    nodes_refusal_logged: AtomicBool,
}

/// What `CLUSTER NODES` told of a cluster's nodes (see `node_names`).
#[derive(Default)]
struct Topology {
    /// What the current cluster client was built with.
    in_use: Option<Routes>,
    /// From the last reply.
    last_seen: Option<Routes>,
    /// From the last reply that agreed with the one before it.
    confirmed: Option<Routes>,
}

/// Why a health check failed, and whether the server said anything at all: a `BUSY` or
/// `LOADING` reply proves the link works, silence or an I/O error does not.
struct HealthFailure {
    cause: String,
    silent: bool,
}

pub struct Supervisor {
    shared: Arc<Shared>,
}

impl Supervisor {
    /// Checks the settings, then starts connecting in the background on `runtime`.
    pub fn start(
        settings: ConnectionSettings,
        logger: Logger,
        runtime: &Handle,
    ) -> StoreResult<Supervisor> {
        let client = build_client(&settings)?;
        let shared = Arc::new(Shared {
            client,
            logger,
            link: watch::Sender::new(Link::Down),
            status: AtomicU8::new(StoreStatus::Connecting as u8),
            current: AtomicU64::new(0),
            broken: AtomicU64::new(0),
            broken_signal: Notify::new(),
            closing: watch::Sender::new(false),
            draining: AtomicBool::new(false),
            started: Instant::now(),
            last_reply_ms: AtomicU64::new(0),
            last_error: Mutex::new(None),
            topology: Mutex::default(),
            nodes_refusal_logged: AtomicBool::new(false),
            settings,
        });
        runtime.spawn(run(shared.clone()));
        Ok(Supervisor { shared })
    }

    pub fn status(&self) -> StoreStatus {
        StoreStatus::from_u8(self.shared.status.load(Ordering::Acquire))
    }

    pub fn address(&self) -> &ServerAddress {
        &self.shared.settings.address
    }

    pub fn logger(&self) -> &Logger {
        &self.shared.logger
    }

    pub fn command_timeout(&self) -> Duration {
        self.shared.settings.command_timeout
    }

    /// Resolves once connected, or fails after `connectTimeoutMs`.
    pub async fn ready(&self) -> StoreResult<()> {
        let deadline = Instant::now() + self.shared.settings.connect_timeout;
        self.acquire(deadline).await.map(|_| ())
    }

    /// Runs one store call: waits for a connection and runs `call` on it, all within
    /// `commandTimeoutMs`, and turns what failed into the store's error. `call` is told the
    /// deadline, so best-effort work (healing) can stop before it.
    pub async fn call<T, F, Fut>(&self, call: F) -> StoreResult<T>
    where
        F: FnOnce(Connection, Instant) -> Fut,
        Fut: Future<Output = Result<T, CallError>>,
    {
        let deadline = Instant::now() + self.shared.settings.command_timeout;
        let (connection, generation) = self.acquire(deadline).await?;
        let sent_ms = self.shared.now_ms();
        match timeout_at(deadline, call(connection, deadline)).await {
            Ok(Ok(value)) => {
                self.shared.saw_reply();
                Ok(value)
            }
            Ok(Err(CallError::Store(error))) => {
                self.shared.saw_reply();
                Err(error)
            }
            Ok(Err(CallError::Redis(error))) => {
                Err(self.shared.classify(error, generation, sent_ms))
            }
            Err(_) => {
                let waited = self.shared.settings.command_timeout.as_millis();
                let message = format!("no reply from Redis within {waited} ms");
                // Only silence since this call was sent condemns the connection: a reply to
                // anything else meanwhile means a slow server, and a reconnect would not help.
                if self.shared.last_reply_ms.load(Ordering::Relaxed) < sent_ms {
                    self.shared.connection_failed(generation, &message);
                }
                Err(StoreError::unavailable(message))
            }
        }
    }

    /// Stops the supervisor and drops the connection; resolves once both are done.
    pub async fn close(&self) {
        self.shared.closing.send_replace(true);
        let mut link = self.shared.link.subscribe();
        let _ = link.wait_for(|l| matches!(l, Link::Closed)).await;
    }

    pub fn is_closed(&self) -> bool {
        *self.shared.closing.borrow()
    }

    /// The first step of closing: calls waiting for a connection reject with `STORE_CLOSED`
    /// now; calls that have one run to their end.
    pub fn drain(&self) {
        self.shared.draining.store(true, Ordering::Release);
        // Wakes every waiter so it sees the flag.
        self.shared.link.send_modify(|_| {});
    }

    fn is_draining(&self) -> bool {
        self.shared.draining.load(Ordering::Acquire) || self.is_closed()
    }

    async fn acquire(&self, deadline: Instant) -> StoreResult<(Connection, u64)> {
        let mut link = self.shared.link.subscribe();
        loop {
            match &*link.borrow_and_update() {
                Link::Up {
                    connection,
                    generation,
                } => return Ok((connection.clone(), *generation)),
                Link::Closed => return Err(StoreError::closed()),
                Link::Down if self.is_draining() => return Err(StoreError::closed()),
                Link::Down => {}
            }
            match timeout_at(deadline, link.changed()).await {
                Ok(Ok(())) => continue,
                Ok(Err(_)) => return Err(StoreError::closed()),
                Err(_) => return Err(self.shared.not_connected()),
            }
        }
    }
}

impl Drop for Supervisor {
    fn drop(&mut self) {
        self.shared.closing.send_replace(true);
    }
}

impl Shared {
    fn now_ms(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }

    fn saw_reply(&self) {
        self.last_reply_ms.store(self.now_ms(), Ordering::Relaxed);
    }

    fn idle_for(&self) -> Duration {
        let last = self.last_reply_ms.load(Ordering::Relaxed);
        Duration::from_millis(self.now_ms().saturating_sub(last))
    }

    fn set_last_error(&self, cause: &str) {
        *self.last_error.lock().unwrap_or_else(|e| e.into_inner()) = Some(cause.to_owned());
    }

    fn not_connected(&self) -> StoreError {
        let address = &self.settings.address;
        let last = self
            .last_error
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        match last {
            Some(cause) => {
                StoreError::unavailable(format!("not connected to Redis at {address}: {cause}"))
            }
            None => StoreError::unavailable(format!("not connected to Redis at {address} yet")),
        }
    }

    /// A call found connection `generation` unusable: have the task replace it, once.
    ///
    /// In a cluster, a call's failure only marks the store unhealthy and has the task check
    /// every primary at once: redis-rs reconnects a node that failed loudly and refreshes the
    /// slot map itself. The task builds another client when a primary does not answer its
    /// PING, or when nodes appear that the client in use cannot verify (see `node_names`).
    fn connection_failed(&self, generation: u64, cause: &str) {
        if self.settings.cluster {
            // A call still running on a client that was since rebuilt says nothing of the new one.
            if generation == self.current.load(Ordering::Acquire) && self.cluster_unhealthy(cause) {
                self.broken_signal.notify_one();
            }
            return;
        }
        if self.broken.fetch_max(generation, Ordering::AcqRel) < generation {
            self.set_last_error(cause);
            // New calls wait for the replacement instead of trying the dead connection.
            self.link.send_if_modified(|link| match link {
                Link::Up {
                    generation: current,
                    ..
                } if *current == generation => {
                    *link = Link::Down;
                    self.status
                        .store(StoreStatus::Reconnecting as u8, Ordering::Release);
                    true
                }
                _ => false,
            });
            self.logger.warn(format!("connection lost: {cause}"));
            self.broken_signal.notify_one();
        }
    }

    /// Marks the cluster unhealthy; true when it was not already.
    fn cluster_unhealthy(&self, cause: &str) -> bool {
        let was = self
            .status
            .swap(StoreStatus::Reconnecting as u8, Ordering::AcqRel);
        let news = was != StoreStatus::Reconnecting as u8;
        if news {
            self.set_last_error(cause);
            self.logger.warn(format!("cluster unhealthy: {cause}"));
        }
        news
    }

    /// The nodes to build a new cluster client from; `None` to ask the seed.
    fn known_routes(&self) -> Option<Routes> {
        let topology = self.topology.lock().unwrap_or_else(|e| e.into_inner());
        topology
            .confirmed
            .clone()
            .or_else(|| topology.in_use.clone())
    }

    /// Records a `CLUSTER NODES` reply: the routes it calls for, and whether the client in use
    /// lacks some of them.
    fn learn_topology(&self, cluster_nodes: &str) -> Option<(Routes, bool)> {
        let RedisClient::Cluster(target) = &self.client else {
            return None;
        };
        let latest = target.routes.learn(&parse_cluster_nodes(cluster_nodes));
        let mut topology = self.topology.lock().unwrap_or_else(|e| e.into_inner());
        let before = topology.last_seen.replace(latest.clone());
        // Nodes can disagree for a moment (or ask through different interfaces): rebuild only
        // for what two replies in a row show.
        let confirmed = before.as_ref().is_some_and(|b| b.covers(&latest));
        if confirmed {
            topology.confirmed = Some(latest.clone());
        }
        let warned = before.map(|r| r.ambiguous).unwrap_or_default();
        for port in latest.ambiguous.difference(&warned) {
            self.logger.warn(format!(
                "cluster nodes with different addresses announce port {port}: they are \
                 verified against their own addresses, not {}",
                self.settings.address.host
            ));
        }
        let covered = topology
            .in_use
            .as_ref()
            .is_some_and(|in_use| in_use.covers(&latest));
        Some((latest, confirmed && !covered))
    }

    /// The store's error for a failed call sent `sent_ms` after start, after reporting what it
    /// says of the connection.
    fn classify(&self, error: RedisError, generation: u64, sent_ms: u64) -> StoreError {
        if let Some((code, detail)) = server_error(&error) {
            let refused = format!("Redis refused the command: {code} {detail}");
            return match code.as_str() {
                "WRONGTYPE" => StoreError::corrupt_record(refused),
                // After a failover the old primary answers READONLY, and a connection that lost
                // its authentication answers NOAUTH: only a new connection helps. Any other
                // refusal (NOPERM, a script error) fails this call alone.
                "READONLY" | "NOAUTH" => {
                    self.connection_failed(generation, &refused);
                    StoreError::unavailable(refused)
                }
                _ => {
                    self.saw_reply();
                    StoreError::unavailable(refused)
                }
            };
        }
        let cause = describe_chain(&error);
        // A timeout (a cluster node's, from redis-rs) condemns only as ours does: when nothing
        // replied since the call was sent.
        let silent = !error.is_timeout() || self.last_reply_ms.load(Ordering::Relaxed) < sent_ms;
        // Only a broken link condemns the connection: a reply that did not convert (another
        // writer's data) is this call's problem alone.
        let broken = error.is_io_error()
            || error.is_connection_dropped()
            || error.is_timeout()
            || matches!(
                error.kind(),
                ErrorKind::ClusterConnectionNotFound | ErrorKind::AuthenticationFailed
            );
        if broken {
            if silent {
                self.connection_failed(generation, &cause);
            }
            return StoreError::unavailable(format!("connection to Redis failed: {cause}"));
        }
        StoreError::unavailable(format!("Redis call failed: {cause}"))
    }
}

/// The server's error code and text, looking inside an aborted transaction or a pipeline,
/// where redis-rs reports only `EXECABORT` or the first command's kind.
pub fn server_error(error: &RedisError) -> Option<(String, String)> {
    let errors = error.clone().into_server_errors()?;
    let (_, first) = errors.first()?;
    Some((
        first.code().to_owned(),
        first.details().unwrap_or_default().to_owned(),
    ))
}

async fn run(shared: Arc<Shared>) {
    let mut closing = shared.closing.subscribe();
    let mut generation = 0u64;
    let mut attempt = 0u32;
    let mut connected_once = false;
    while !*closing.borrow() {
        let connected = tokio::select! {
            result = connect(&shared, None) => result,
            _ = closing.wait_for(|c| *c) => break,
        };
        match connected {
            Ok(mut connection) => {
                let connected_at = Instant::now();
                let address = &shared.settings.address;
                let verb = if connected_once {
                    "reconnected"
                } else {
                    "connected"
                };
                shared.logger.info(format!("{verb} to {address}"));
                connected_once = true;
                loop {
                    generation += 1;
                    shared.current.store(generation, Ordering::Release);
                    shared.saw_reply();
                    // Status first: a caller that reads 'ready' finds the link up, or about to be.
                    shared
                        .status
                        .store(StoreStatus::Ready as u8, Ordering::Release);
                    shared.link.send_replace(Link::Up {
                        connection: connection.clone(),
                        generation,
                    });
                    match watch_connection(&shared, connection, generation, &mut closing).await {
                        // A cluster client rebuilt for new nodes takes over without a gap.
                        Some(replacement) => connection = replacement,
                        None => break,
                    }
                }
                // A connection that dies at once (a replica answering READONLY, a server that
                // drops us) must not reset the backoff, or reconnects would spin.
                if connected_at.elapsed() >= shared.settings.backoff.max {
                    attempt = 0;
                }
                if *closing.borrow() {
                    break;
                }
                shared.link.send_replace(Link::Down);
                shared
                    .status
                    .store(StoreStatus::Reconnecting as u8, Ordering::Release);
            }
            Err(cause) => {
                shared.logger.warn(format!("connection failed: {cause}"));
                shared.set_last_error(&cause);
            }
        }
        attempt += 1;
        let delay = shared.settings.backoff.delay(attempt, jitter_seed());
        shared.logger.info(format!(
            "reconnecting (attempt {attempt}) in {} ms",
            delay.as_millis()
        ));
        tokio::select! {
            _ = sleep(delay) => {}
            _ = closing.wait_for(|c| *c) => break,
        }
    }
    shared
        .status
        .store(StoreStatus::End as u8, Ordering::Release);
    shared.link.send_replace(Link::Closed);
}

/// A new connection. A cluster client dials the nodes `routes` renames by the seed's name;
/// without them it learns them from the seed first.
async fn connect(shared: &Shared, routes: Option<Routes>) -> Result<Connection, String> {
    let settings = &shared.settings;
    // The attempt runs under our own `connectTimeoutMs` below, which names the cause.
    let config = AsyncConnectionConfig::new()
        .set_connection_timeout(None)
        // Each call runs under its own deadline (`Supervisor::call`), so the crate's
        // 500 ms default must not cut in first with a cause-less "timed out".
        .set_response_timeout(None);
    // The connection, and for a cluster the routes its client was built with.
    let attempt = async {
        match &shared.client {
            RedisClient::Standalone(client) => client
                .get_multiplexed_async_connection_with_config(&config)
                .await
                .map(|c| (Connection::Standalone(c), None))
                .map_err(|e| describe_chain(&e)),
            RedisClient::Cluster(target) => {
                let routes = match routes {
                    Some(routes) => Some(routes),
                    None => routes_from_seed(shared, target, &config).await?,
                };
                let client =
                    cluster_client(settings, target, routes.as_ref()).map_err(|e| e.message)?;
                client
                    .get_async_connection()
                    .await
                    .map(|c| (Connection::Cluster(c), routes))
                    .map_err(|e| describe_chain(&e))
            }
        }
    };
    // Without credentials nothing is sent while connecting: a PING finds NOAUTH (and a
    // server that accepts TCP but never answers) before the store reports ready. A cluster
    // client must reach the primary of every slot.
    let attempt = async {
        let (mut connection, routes) = attempt.await?;
        if connection.is_cluster() {
            if let Some(failure) = check_slot_owners(shared, &mut connection).await {
                return Err(failure.cause);
            }
            // Only now: a client that did not make it must not pass for the one in use.
            shared
                .topology
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .in_use = routes;
        } else {
            connection.ping().await.map_err(|e| describe_chain(&e))?;
        }
        Ok::<_, String>(connection)
    };
    match timeout(settings.connect_timeout, attempt).await {
        Ok(result) => result,
        Err(_) => Err(format!(
            "no connection within {} ms",
            settings.connect_timeout.as_millis()
        )),
    }
}

/// The nodes to start a cluster client from, learned from the seed by its own name. `None`
/// when the seed refuses `CLUSTER NODES` (an ACL may allow `CLUSTER SLOTS` only): the store
/// still connects, and says once what it costs.
async fn routes_from_seed(
    shared: &Shared,
    target: &ClusterTarget,
    config: &AsyncConnectionConfig,
) -> Result<Option<Routes>, String> {
    let seed = target
        .seed
        .get_multiplexed_async_connection_with_config(config)
        .await
        .map_err(|e| describe_chain(&e))?;
    match Connection::Standalone(seed).cluster_nodes().await {
        Ok(text) => Ok(shared.learn_topology(&text).map(|(routes, _)| routes)),
        Err(error) if server_error(&error).is_some() => {
            let logged = shared.nodes_refusal_logged.swap(true, Ordering::AcqRel);
            if target.routes.renames() && !logged {
                shared.logger.warn(format!(
                    "the seed refused CLUSTER NODES ({}): nodes are verified against the \
                     addresses they announce",
                    describe_chain(&error)
                ));
            }
            Ok(None)
        }
        Err(error) => Err(describe_chain(&error)),
    }
}

/// Returns when the connection must be replaced: with the replacement when a cluster client
/// was rebuilt, with `None` when it failed or the store closes.
async fn watch_connection(
    shared: &Shared,
    mut connection: Connection,
    generation: u64,
    closing: &mut watch::Receiver<bool>,
) -> Option<Connection> {
    let interval = shared.settings.health_check_interval;
    let cluster = shared.settings.cluster;
    // Cluster checks in a row that some primary did not answer at all.
    let mut silent_checks = 0u32;
    let mut rebuild_failures = 0u32;
    let mut rebuild_after = Instant::now();
    loop {
        tokio::select! {
            _ = closing.wait_for(|c| *c) => return None,
            _ = shared.broken_signal.notified() => {
                if shared.broken.load(Ordering::Acquire) >= generation {
                    return None;
                }
                // A cluster call failed: check the primaries and the topology now.
                if !cluster {
                    continue;
                }
            }
            // Due one interval after the last reply, so an idle connection is checked in time.
            _ = sleep(if cluster { interval } else { interval.saturating_sub(shared.idle_for()) }) => {}
        }
        // A cluster is checked even when busy: a call to one slot says nothing of the others.
        if !cluster && shared.idle_for() < interval {
            continue;
        }
        let check = async {
            if cluster {
                check_cluster(shared, &mut connection).await
            } else {
                (health_check(shared, &mut connection).await, None)
            }
        };
        tokio::pin!(check);
        let (failure, stale) = loop {
            tokio::select! {
                checked = &mut check => break checked,
                _ = closing.wait_for(|c| *c) => return None,
                // A call may find the connection dead while the PING is still waiting.
                _ = shared.broken_signal.notified() => {
                    if shared.broken.load(Ordering::Acquire) >= generation {
                        return None;
                    }
                }
            }
        };
        match failure {
            Some(failure) if cluster => {
                silent_checks = if failure.silent { silent_checks + 1 } else { 0 };
                shared.cluster_unhealthy(&failure.cause);
            }
            Some(failure) => {
                shared.connection_failed(generation, &failure.cause);
                return None;
            }
            None if cluster => {
                silent_checks = 0;
                rebuild_failures = 0;
                let was = shared
                    .status
                    .swap(StoreStatus::Ready as u8, Ordering::AcqRel);
                if was == StoreStatus::Reconnecting as u8 {
                    shared
                        .logger
                        .info("cluster healthy again: every primary answers");
                }
            }
            None => {}
        }
        // A new cluster client: one that can verify new nodes, or one with fresh connections
        // when a primary stayed silent twice in a row (redis-rs keeps a connection that only
        // went silent, as a half-open one does, forever). Backs off after attempts that
        // failed: each one dials every primary.
        let rebuild = match stale {
            Some(routes) => Some((Some(routes), "new cluster nodes")),
            None if silent_checks >= 2 => {
                Some((shared.known_routes(), "a primary stopped answering"))
            }
            None => None,
        };
        if let Some((routes, why)) = rebuild.filter(|_| Instant::now() >= rebuild_after) {
            let rebuilt = tokio::select! {
                rebuilt = connect(shared, routes) => rebuilt,
                _ = closing.wait_for(|c| *c) => return None,
            };
            match rebuilt {
                Ok(replacement) => {
                    shared.logger.info(format!("{why}: cluster client rebuilt"));
                    return Some(replacement);
                }
                Err(cause) => {
                    rebuild_failures += 1;
                    let delay = shared
                        .settings
                        .backoff
                        .delay(rebuild_failures, jitter_seed());
                    rebuild_after = Instant::now() + delay;
                    shared.logger.warn(format!(
                        "cluster client rebuild failed: {cause}; next try in {} ms",
                        delay.as_millis()
                    ));
                }
            }
        }
    }
}

/// One check of a cluster: asks one node for `CLUSTER NODES`, and PINGs the primary of every
/// slot. Returns what failed, and the routes to rebuild the client with when the one in use
/// cannot verify some node.
async fn check_cluster(
    shared: &Shared,
    connection: &mut Connection,
) -> (Option<HealthFailure>, Option<Routes>) {
    let mut asking = connection.clone();
    let (failure, nodes) = tokio::join!(
        check_slot_owners(shared, connection),
        timeout(shared.settings.command_timeout, asking.cluster_nodes()),
    );
    // A node that does not answer is asked again at the next check.
    let stale = match nodes {
        Ok(Ok(text)) => match shared.learn_topology(&text) {
            Some((routes, true)) => Some(routes),
            _ => None,
        },
        _ => None,
    };
    (failure, stale)
}

/// PINGs the primary of every slot by its address, so that one the client holds no connection
/// to counts as down; falls back to a PING of every primary it knows when `CLUSTER SLOTS`
/// names none.
async fn check_slot_owners(shared: &Shared, connection: &mut Connection) -> Option<HealthFailure> {
    let deadline = Instant::now() + shared.settings.command_timeout;
    let owners = match timeout_at(deadline, connection.slot_owners()).await {
        Ok(Ok(owners)) => owners,
        Ok(Err(error)) => return Some(health_failure(&error)),
        Err(_) => return Some(silence(shared)),
    };
    if owners.is_empty() {
        return health_check(shared, connection).await;
    }
    let pings = owners.iter().map(|(host, port)| {
        let mut connection = connection.clone();
        async move {
            match timeout_at(deadline, connection.ping_node(host, *port)).await {
                Ok(Ok(())) => None,
                Ok(Err(error)) => Some(health_failure(&error)),
                Err(_) => Some(silence(shared)),
            }
        }
    });
    let failure = join_all(pings).await.into_iter().flatten().next();
    if failure.is_none() {
        shared.saw_reply();
    }
    failure
}

fn health_failure(error: &RedisError) -> HealthFailure {
    HealthFailure {
        cause: format!("health check failed: {}", describe_chain(error)),
        silent: server_error(error).is_none(),
    }
}

/// PINGs the connection (a cluster's every primary); what failed, when it did not answer.
async fn health_check(shared: &Shared, connection: &mut Connection) -> Option<HealthFailure> {
    match timeout(shared.settings.command_timeout, connection.ping()).await {
        Ok(Ok(())) => {
            shared.saw_reply();
            None
        }
        Ok(Err(error)) => Some(health_failure(&error)),
        Err(_) => Some(silence(shared)),
    }
}

fn silence(shared: &Shared) -> HealthFailure {
    HealthFailure {
        cause: format!(
            "health check got no reply within {} ms",
            shared.settings.command_timeout.as_millis()
        ),
        silent: true,
    }
}
