//! A Redis Cluster. Its connection is one redis-rs cluster client, which reconnects nodes
//! after errors by itself and refreshes its slot map. So a call's failure does not condemn
//! it: it marks the store unhealthy and has the watcher check every primary at once. Each
//! interval the watcher PINGs the primary of every slot and reads `CLUSTER NODES`; it builds
//! a new client when a primary stays silent (redis-rs keeps a half-open connection) or when
//! nodes appear that the client in use cannot verify (see `node_names`).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use futures_util::future::{join_all, BoxFuture};
use redis::ErrorKind;
use tokio::time::{timeout, timeout_at, Instant};

use super::backoff::jitter_seed;
use super::client::{cluster_client, ClusterTarget};
use super::health::{health_check, health_failure, silence, HealthFailure};
use super::node_names::{parse_cluster_nodes, Routes};
use super::supervisor::{server_error, Connector, Core, Status, Watcher};
use super::Connection;
use crate::error::describe_chain;

/// The cluster's connector and watcher in one: a rebuild connects again, with what the
/// watcher learned of the nodes.
pub(super) struct Cluster {
    target: Box<ClusterTarget>,
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

impl Cluster {
    pub(super) fn new(target: Box<ClusterTarget>) -> Arc<Self> {
        Arc::new(Cluster {
            target,
            topology: Mutex::default(),
            nodes_refusal_logged: AtomicBool::new(false),
        })
    }

    fn topology(&self) -> std::sync::MutexGuard<'_, Topology> {
        self.topology.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The nodes to build a new cluster client from; `None` to ask the seed.
    fn known_routes(&self) -> Option<Routes> {
        let topology = self.topology();
        topology
            .confirmed
            .clone()
            .or_else(|| topology.in_use.clone())
    }

    /// Records a `CLUSTER NODES` reply: the routes it calls for, and whether the client in use
    /// lacks some of them.
    fn learn_topology(&self, core: &Core<Connection>, cluster_nodes: &str) -> (Routes, bool) {
        let latest = self
            .target
            .routes
            .learn(&parse_cluster_nodes(cluster_nodes));
        let mut topology = self.topology();
        let before = topology.last_seen.replace(latest.clone());
        // Nodes can disagree for a moment (or ask through different interfaces): rebuild only
        // for what two replies in a row show.
        let confirmed = before.as_ref().is_some_and(|b| b.covers(&latest));
        if confirmed {
            topology.confirmed = Some(latest.clone());
        }
        let warned = before.map(|r| r.ambiguous).unwrap_or_default();
        for port in latest.ambiguous.difference(&warned) {
            core.logger().warn(format!(
                "cluster nodes with different addresses announce port {port}: they are \
                 verified against their own addresses, not {}",
                core.settings().address.host
            ));
        }
        let covered = topology
            .in_use
            .as_ref()
            .is_some_and(|in_use| in_use.covers(&latest));
        (latest, confirmed && !covered)
    }

    /// A new cluster client that dials the nodes `routes` renames by the seed's name; without
    /// them it learns them from the seed first. It must reach the primary of every slot.
    async fn connect_with(
        &self,
        core: &Core<Connection>,
        routes: Option<Routes>,
    ) -> Result<Connection, String> {
        let routes = match routes {
            Some(routes) => Some(routes),
            None => self.routes_from_seed(core).await?,
        };
        let client = cluster_client(core.settings(), &self.target, routes.as_ref())
            .map_err(|e| e.message)?;
        let mut connection = client
            .get_async_connection()
            .await
            .map(Connection::cluster)
            .map_err(|e| describe_chain(&e))?;
        let dialled = Dialled {
            target: &self.target,
            routes: routes.as_ref(),
        };
        if let Some(failure) = check_slot_owners(core, &mut connection, dialled).await {
            return Err(failure.cause);
        }
        // Only now: a client that did not make it must not pass for the one in use.
        self.topology().in_use = routes;
        Ok(connection)
    }

    /// The nodes to start a cluster client from, learned from the seed by its own name. `None`
    /// when the seed refuses `CLUSTER NODES` (an ACL may allow `CLUSTER SLOTS` only): the store
    /// still connects, and says once what it costs.
    async fn routes_from_seed(&self, core: &Core<Connection>) -> Result<Option<Routes>, String> {
        let seed = self
            .target
            .seed
            .get_multiplexed_async_connection_with_config(&self.target.seed_config)
            .await
            .map_err(|e| describe_chain(&e))?;
        match Connection::Standalone(seed).cluster_nodes().await {
            Ok(text) => Ok(Some(self.learn_topology(core, &text).0)),
            Err(error) if server_error(&error).is_some() => {
                let logged = self.nodes_refusal_logged.swap(true, Ordering::AcqRel);
                if self.target.routes.renames() && !logged {
                    core.logger().warn(format!(
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

    /// One check of the cluster: asks one node for `CLUSTER NODES`, and PINGs the primary of
    /// every slot. Returns what failed, and the routes to rebuild the client with when the one
    /// in use cannot verify some node.
    async fn check(
        &self,
        core: &Core<Connection>,
        connection: &mut Connection,
    ) -> (Option<HealthFailure>, Option<Routes>) {
        let mut asking = connection.clone();
        let routes = self.topology().in_use.clone();
        let dialled = Dialled {
            target: &self.target,
            routes: routes.as_ref(),
        };
        let (failure, nodes) = tokio::join!(
            check_slot_owners(core, connection, dialled),
            timeout(core.settings().command_timeout, asking.cluster_nodes()),
        );
        // A node that does not answer is asked again at the next check.
        let stale = match nodes {
            Ok(Ok(text)) => match self.learn_topology(core, &text) {
                (routes, true) => Some(routes),
                _ => None,
            },
            _ => None,
        };
        (failure, stale)
    }
}

impl Connector<Connection> for Cluster {
    fn connect<'a>(
        &'a self,
        core: &'a Core<Connection>,
    ) -> BoxFuture<'a, Result<Connection, String>> {
        Box::pin(self.connect_with(core, None))
    }
}

impl Watcher<Connection> for Cluster {
    fn watch<'a>(
        &'a self,
        core: &'a Core<Connection>,
        mut connection: Connection,
        generation: u64,
    ) -> BoxFuture<'a, Option<Connection>> {
        Box::pin(async move {
            let interval = core.settings().health_check_interval;
            // Checks in a row that some primary did not answer at all.
            let mut silent_checks = 0u32;
            let mut rebuild_failures = 0u32;
            let mut rebuild_after = Instant::now();
            loop {
                // Checked even when busy: a call to one slot says nothing of the others. A
                // call's failure wakes the watcher to check at once.
                core.pause(generation, interval).await?;
                let checked = self.check(core, &mut connection);
                let (failure, stale) = core.unless_condemned(generation, checked).await?;
                match failure {
                    Some(failure) => {
                        silent_checks = if failure.silent { silent_checks + 1 } else { 0 };
                        unhealthy(core, &failure.cause);
                    }
                    None => {
                        silent_checks = 0;
                        rebuild_failures = 0;
                        if core.swap_status(Status::Ready) == Status::Reconnecting {
                            core.logger()
                                .info("cluster healthy again: every primary answers");
                        }
                    }
                }
                // A new cluster client: one that can verify new nodes, or one with fresh
                // connections when a primary stayed silent twice in a row (redis-rs keeps a
                // connection that only went silent, as a half-open one does, until a slot-map
                // refresh of its own happens to PING it; then the check above passes and
                // nothing is rebuilt). Backs off after attempts that failed: each one dials
                // every primary.
                let rebuild = match stale {
                    Some(routes) => Some((Some(routes), "new cluster nodes")),
                    None if silent_checks >= 2 => {
                        Some((self.known_routes(), "a primary stopped answering"))
                    }
                    None => None,
                };
                let Some((routes, why)) = rebuild.filter(|_| Instant::now() >= rebuild_after)
                else {
                    continue;
                };
                let rebuilding = core.connect_in_time(self.connect_with(core, routes));
                match core.until_closed(rebuilding).await? {
                    Ok(replacement) => {
                        core.logger().info(format!("{why}: cluster client rebuilt"));
                        return Some(replacement);
                    }
                    Err(cause) => {
                        rebuild_failures += 1;
                        let delay = core
                            .settings()
                            .backoff
                            .delay(rebuild_failures, jitter_seed());
                        rebuild_after = Instant::now() + delay;
                        core.logger().warn(format!(
                            "cluster client rebuild failed: {cause}; next try in {} ms",
                            delay.as_millis()
                        ));
                    }
                }
            }
        })
    }

    /// Marks the cluster unhealthy and has the watcher check now; a call still running on a
    /// client since rebuilt says nothing of the new one.
    fn call_failed(&self, core: &Core<Connection>, generation: u64, cause: &str) {
        if core.is_current(generation) && unhealthy(core, cause) {
            core.wake_watcher();
        }
    }
}

/// Marks the cluster unhealthy; true when it was not already.
fn unhealthy(core: &Core<Connection>, cause: &str) -> bool {
    let news = core.swap_status(Status::Reconnecting) != Status::Reconnecting;
    if news {
        core.set_last_error(cause);
        core.logger().warn(format!("cluster unhealthy: {cause}"));
    }
    news
}

/// How the cluster client in question dials its nodes, to tell why it holds no connection to
/// one.
#[derive(Clone, Copy)]
struct Dialled<'a> {
    target: &'a ClusterTarget,
    routes: Option<&'a Routes>,
}

impl Dialled<'_> {
    /// Why the client holds no connection to `host:port`: redis-rs says only that it has none
    /// (`ClusterConnectionNotFound`), not what its dial met (a certificate that does not name
    /// the node, a refused AUTH). So the node is dialled alone, as the client dials it, and
    /// what that meets is the cause; `None` when it connects or does not finish by the check's
    /// deadline, or when the client reaches that node by the seed's name (`node_names`), which
    /// a dial of its own cannot repeat.
    async fn why_not_connected(self, host: &str, port: u16, deadline: Instant) -> Option<String> {
        if self.routes.is_some_and(|routes| routes.renamed(host, port)) {
            return None;
        }
        match timeout_at(deadline, self.target.dial_node(host, port)).await {
            Ok(Err(cause)) => Some(format!("dialled alone, {host}:{port} fails: {cause}")),
            _ => None,
        }
    }
}

/// PINGs the primary of every slot by its address, so that one the client holds no connection
/// to counts as down; falls back to a PING of every primary it knows when `CLUSTER SLOTS`
/// names none.
async fn check_slot_owners(
    core: &Core<Connection>,
    connection: &mut Connection,
    dialled: Dialled<'_>,
) -> Option<HealthFailure> {
    let deadline = Instant::now() + core.settings().command_timeout;
    let owners = match timeout_at(deadline, connection.slot_owners()).await {
        Ok(Ok(owners)) => owners,
        Ok(Err(error)) => return Some(health_failure(&error)),
        Err(_) => return Some(silence(core)),
    };
    if owners.is_empty() {
        return health_check(core, connection).await;
    }
    let pings = owners.iter().map(|(host, port)| {
        let mut connection = connection.clone();
        async move {
            match timeout_at(deadline, connection.ping_node(host, *port)).await {
                Ok(Ok(())) => None,
                Ok(Err(error)) => {
                    let mut failure = health_failure(&error);
                    if error.kind() == ErrorKind::ClusterConnectionNotFound {
                        if let Some(why) = dialled.why_not_connected(host, *port, deadline).await {
                            failure.cause = format!("{}; {why}", failure.cause);
                        }
                    }
                    Some(failure)
                }
                Err(_) => Some(silence(core)),
            }
        }
    });
    let failure = join_all(pings).await.into_iter().flatten().next();
    if failure.is_none() {
        core.saw_reply();
    }
    failure
}
