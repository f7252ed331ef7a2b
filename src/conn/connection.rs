//! One handle over either kind of connection, so the store's round trips do not care which.

use redis::aio::{ConnectionLike, MultiplexedConnection};
use redis::cluster_async::ClusterConnection;
use redis::cluster_routing::{
    MultipleNodeRoutingInfo, ResponsePolicy, RoutingInfo, SingleNodeRoutingInfo,
};
use redis::{Cmd, Pipeline, RedisFuture, RedisResult, Value};

#[derive(Clone)]
pub enum Connection {
    /// One multiplexed connection to a standalone server.
    Standalone(MultiplexedConnection),
    /// One multiplexed connection per node; redis-rs routes each key to its slot's primary.
    Cluster(ClusterConnection),
}

impl Connection {
    pub fn is_cluster(&self) -> bool {
        matches!(self, Connection::Cluster(_))
    }

    /// PINGs the server, or every primary of a cluster.
    pub async fn ping(&mut self) -> RedisResult<()> {
        match self {
            Connection::Standalone(connection) => redis::cmd("PING").query_async(connection).await,
            Connection::Cluster(connection) => {
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

    /// `CLUSTER NODES` from any one node.
    pub async fn cluster_nodes(&mut self) -> RedisResult<String> {
        let command = redis::cmd("CLUSTER").arg("NODES").clone();
        match self {
            Connection::Standalone(connection) => command.query_async(connection).await,
            Connection::Cluster(connection) => {
                let any_node = RoutingInfo::SingleNode(SingleNodeRoutingInfo::Random);
                let reply = connection.route_command(command, any_node).await?;
                Ok(redis::from_redis_value(reply)?)
            }
        }
    }
}

impl ConnectionLike for Connection {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Connection::Standalone(connection) => connection.req_packed_command(cmd),
            Connection::Cluster(connection) => connection.req_packed_command(cmd),
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
            Connection::Cluster(connection) => {
                connection.req_packed_commands(pipeline, offset, count)
            }
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Connection::Standalone(connection) => connection.get_db(),
            Connection::Cluster(connection) => connection.get_db(),
        }
    }
}
