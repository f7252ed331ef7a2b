//! One handle over either kind of connection, so the store's round trips do not care which.

use std::sync::Arc;

use redis::aio::{ConnectionLike, MultiplexedConnection};
use redis::cluster_async::ClusterConnection;
use redis::cluster_routing::{
    MultipleNodeRoutingInfo, ResponsePolicy, RoutingInfo, SingleNodeRoutingInfo,
};
use redis::{
    Cmd, ErrorKind, Pipeline, RedisError, RedisFuture, RedisResult, ServerErrorKind, Value,
};

use super::gates::{NodeGates, SlotRange};

#[derive(Clone)]
pub(crate) enum Connection {
    /// One multiplexed connection to a standalone server.
    Standalone(MultiplexedConnection),
    /// One multiplexed connection per node; redis-rs routes each key to its slot's primary.
    /// Each of the store's commands takes a place at the gate of its slot's primary (`gates`).
    Cluster(ClusterConnection, Arc<NodeGates>),
}

impl Connection {
    pub(super) fn cluster(connection: ClusterConnection) -> Self {
        Connection::Cluster(connection, Arc::default())
    }

    pub(crate) fn is_cluster(&self) -> bool {
        matches!(self, Connection::Cluster(..))
    }

    /// PINGs the server, or every primary of a cluster.
    pub(super) async fn ping(&mut self) -> RedisResult<()> {
        match self {
            Connection::Standalone(connection) => redis::cmd("PING").query_async(connection).await,
            Connection::Cluster(connection, _) => {
                let every_primary = RoutingInfo::MultiNode((
                    MultipleNodeRoutingInfo::AllMasters,
                    Some(ResponsePolicy::AllSucceeded),
                ));
                connection
                    .route_command(redis::cmd("PING"), every_primary)
                    .await
                    .map(drop)
            }
        }
    }

    /// PINGs one cluster node by the address redis-rs's slot map knows it by (a standalone
    /// connection: its server). Fails when the client holds no connection to that node, where
    /// a PING to every primary would skip it.
    pub(super) async fn ping_node(&mut self, host: &str, port: u16) -> RedisResult<()> {
        match self {
            Connection::Standalone(connection) => redis::cmd("PING").query_async(connection).await,
            Connection::Cluster(connection, _) => {
                let node = RoutingInfo::SingleNode(SingleNodeRoutingInfo::ByAddress {
                    host: host.to_owned(),
                    port,
                });
                connection
                    .route_command(redis::cmd("PING"), node)
                    .await
                    .map(drop)
            }
        }
    }

    /// The primaries that serve slots, as `CLUSTER SLOTS` (the source of redis-rs's slot map)
    /// names them, from any one node, each once. A primary without a usable endpoint is left
    /// out. A cluster's gates learn the reply.
    pub(super) async fn slot_owners(&mut self) -> RedisResult<Vec<(String, u16)>> {
        let reply = self
            .ask_any_node(redis::cmd("CLUSTER").arg("SLOTS"))
            .await?;
        let ranges = parse_slot_ranges(&reply);
        let mut owners: Vec<(String, u16)> = ranges.iter().map(|r| r.node.clone()).collect();
        owners.sort_unstable();
        owners.dedup();
        if let Connection::Cluster(_, gates) = self {
            gates.learn(ranges);
        }
        Ok(owners)
    }

    /// `CLUSTER NODES` from any one node.
    pub(super) async fn cluster_nodes(&mut self) -> RedisResult<String> {
        let reply = self
            .ask_any_node(redis::cmd("CLUSTER").arg("NODES"))
            .await?;
        Ok(redis::from_redis_value(reply)?)
    }

    /// One command to one node, whichever: a cluster routes it to a random node.
    async fn ask_any_node(&mut self, command: &Cmd) -> RedisResult<Value> {
        match self {
            Connection::Standalone(connection) => command.query_async(connection).await,
            Connection::Cluster(connection, _) => {
                let any_node = RoutingInfo::SingleNode(SingleNodeRoutingInfo::Random);
                connection.route_command(command.clone(), any_node).await
            }
        }
    }
}

impl ConnectionLike for Connection {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Connection::Standalone(connection) => connection.req_packed_command(cmd),
            Connection::Cluster(connection, gates) => Box::pin(async move {
                let gate = gates.gate(Some(cmd));
                let _place = gate.acquire().await;
                match connection.req_packed_command(cmd).await {
                    Err(error) if is_redirect(&error) => {
                        follow_redirect(connection, cmd, error).await
                    }
                    result => result,
                }
            }),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Connection::Standalone(connection) => {
                connection.req_packed_commands(pipeline, offset, count)
            }
            Connection::Cluster(connection, gates) => Box::pin(async move {
                let gate = gates.gate(pipeline.cmd_iter().next());
                let _place = gate.acquire().await;
                connection
                    .req_packed_commands(pipeline, offset, count)
                    .await
            }),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Connection::Standalone(connection) => connection.get_db(),
            Connection::Cluster(connection, _) => connection.get_db(),
        }
    }
}

/// How many redirects one command follows itself once redis-rs has given up on it. A `MOVED`
/// is followed through redis-rs, with its retries again; the call's deadline bounds it all.
const REDIRECT_FOLLOWS: usize = 3;

fn is_redirect(error: &RedisError) -> bool {
    matches!(
        error.kind(),
        ErrorKind::Server(ServerErrorKind::Ask | ServerErrorKind::Moved)
    )
}

/// Follows the redirect redis-rs gave up on. redis-rs sends `ASKING` and the command as two
/// requests on the target's multiplexed connection, so under concurrency another call's
/// command can slip in between and take the `ASKING`: the command is then bounced back
/// (`MOVED`) and forth (`ASK`) until its retries run out, which happens to every busy key
/// during live resharding. It runs out on an `ASK`, or on a `MOVED` when it started at a node
/// that imports the slot (a slot map from before the slot last moved puts it there).
///
/// An `ASK` is followed with `ASKING` and the command as one two-command pipeline, so nothing
/// can come between them; a `MOVED` by sending the command again, along the slot map that the
/// `MOVED` had redis-rs refresh. Either way the node that redirected ran nothing, so nothing
/// is run twice.
async fn follow_redirect(
    connection: &mut ClusterConnection,
    cmd: &Cmd,
    error: RedisError,
) -> RedisResult<Value> {
    let mut last = error;
    for _ in 0..REDIRECT_FOLLOWS {
        let asked_at = match last.kind() {
            ErrorKind::Server(ServerErrorKind::Ask) => redirect_target(&last),
            _ => None,
        };
        let reply = match asked_at {
            Some(target) => {
                let mut asking = redis::pipe();
                asking.cmd("ASKING").add_command(cmd.clone());
                let asked = connection
                    .route_pipeline(asking, 1, 1, target)
                    .await
                    .and_then(|mut replies| replies.pop().ok_or_else(no_reply))
                    .and_then(Value::extract_error);
                match asked {
                    // redis-rs dials a node it holds no connection to for its own redirects
                    // only.
                    Err(error) if error.kind() == ErrorKind::ClusterConnectionNotFound => {
                        connection.req_packed_command(cmd).await
                    }
                    asked => asked,
                }
            }
            // A MOVED, or an ASK that names no host (Redis's unknown endpoint).
            None => connection.req_packed_command(cmd).await,
        };
        match reply {
            Err(error) if is_redirect(&error) => last = error,
            reply => return reply,
        }
    }
    Err(last)
}

/// The node a redirect names, as redis-rs's map of connections knows it: an IPv6 address
/// without brackets. `None` for a node without a host (Redis's unknown endpoint).
fn redirect_target(error: &RedisError) -> Option<SingleNodeRoutingInfo> {
    let (node, _slot) = error.redirect_node()?;
    let (host, port) = node.rsplit_once(':')?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let port = port.parse().ok()?;
    (!host.is_empty()).then(|| SingleNodeRoutingInfo::ByAddress {
        host: host.to_owned(),
        port,
    })
}

fn no_reply() -> RedisError {
    RedisError::from((ErrorKind::Client, "no reply to a command sent after ASKING"))
}

/// Each range of a `CLUSTER SLOTS` reply is `[start, end, [host, port, id, …], replicas…]`.
fn parse_slot_ranges(reply: &Value) -> Vec<SlotRange> {
    let Value::Array(ranges) = reply else {
        return Vec::new();
    };
    let slot = |value: Option<&Value>| match value {
        Some(Value::Int(slot)) => u16::try_from(*slot).ok(),
        _ => None,
    };
    ranges
        .iter()
        .filter_map(|range| {
            let Value::Array(fields) = range else {
                return None;
            };
            let Some(Value::Array(primary)) = fields.get(2) else {
                return None;
            };
            Some(SlotRange {
                start: slot(fields.first())?,
                end: slot(fields.get(1))?,
                node: endpoint(primary)?,
            })
        })
        .collect()
}

fn endpoint(node: &[Value]) -> Option<(String, u16)> {
    let host = match node.first()? {
        Value::BulkString(bytes) => String::from_utf8(bytes.clone()).ok()?,
        Value::SimpleString(text) => text.clone(),
        _ => return None,
    };
    let port = match node.get(1)? {
        Value::Int(port) => u16::try_from(*port).ok()?,
        _ => return None,
    };
    // "" (the node that answered) and "?" (unknown endpoint) cannot be addressed.
    (!host.is_empty() && host != "?").then_some((host, port))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(s: &str) -> Value {
        Value::BulkString(s.as_bytes().to_vec())
    }

    fn node(host: &str, port: i64) -> Value {
        Value::Array(vec![text(host), Value::Int(port), text("id")])
    }

    fn range(start: i64, end: i64, nodes: Vec<Value>) -> Value {
        let mut fields = vec![Value::Int(start), Value::Int(end)];
        fields.extend(nodes);
        Value::Array(fields)
    }

    #[test]
    fn slot_ranges_are_each_ranges_bounds_and_first_node() {
        let reply = Value::Array(vec![
            range(0, 99, vec![node("10.0.0.1", 7000), node("10.0.0.4", 7003)]),
            range(100, 199, vec![node("10.0.0.2", 7001)]),
            range(200, 299, vec![node("10.0.0.1", 7000)]),
            range(300, 399, vec![node("?", 7002)]),
            range(400, 499, vec![node("", 7005)]),
            Value::Array(vec![
                Value::Int(500),
                Value::Int(-1),
                node("10.0.0.2", 7001),
            ]),
        ]);
        let ranges: Vec<_> = parse_slot_ranges(&reply)
            .into_iter()
            .map(|r| (r.start, r.end, r.node))
            .collect();
        assert_eq!(
            ranges,
            vec![
                (0, 99, ("10.0.0.1".to_owned(), 7000)),
                (100, 199, ("10.0.0.2".to_owned(), 7001)),
                (200, 299, ("10.0.0.1".to_owned(), 7000)),
            ]
        );
        assert!(parse_slot_ranges(&Value::Nil).is_empty());
    }

    fn refusal(text: &str) -> RedisError {
        redis::parse_redis_value(format!("-{text}\r\n").as_bytes())
            .and_then(Value::extract_error)
            .unwrap_err()
    }

    fn address(route: Option<SingleNodeRoutingInfo>) -> Option<(String, u16)> {
        match route? {
            SingleNodeRoutingInfo::ByAddress { host, port } => Some((host, port)),
            _ => None,
        }
    }

    #[test]
    fn a_redirect_names_its_node_as_redis_rs_knows_it() {
        let moved = refusal("MOVED 3999 10.0.0.2:6381");
        assert!(is_redirect(&moved));
        assert_eq!(
            address(redirect_target(&moved)),
            Some(("10.0.0.2".to_owned(), 6381))
        );
        let ask = refusal("ASK 3999 [::1]:7002");
        assert!(is_redirect(&ask));
        assert_eq!(
            address(redirect_target(&ask)),
            Some(("::1".to_owned(), 7002))
        );
        assert_eq!(
            address(redirect_target(&refusal("ASK 3999 ::1:7002"))),
            Some(("::1".to_owned(), 7002))
        );
        assert!(redirect_target(&refusal("ASK 3999 :7002")).is_none());
        assert!(redirect_target(&refusal("ASK 3999 10.0.0.2:port")).is_none());
        let other = refusal("TRYAGAIN Multiple keys request during rehashing of slot");
        assert!(!is_redirect(&other));
        assert!(redirect_target(&other).is_none());
    }
}
