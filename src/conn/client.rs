//! The redis-rs clients a store connects with: one to a standalone server, or what a cluster
//! client is built from, as often as the supervisor needs a new one.

use std::sync::Arc;
use std::time::Duration;

use redis::cluster::{ClusterClient, ClusterClientBuilder};
use redis::io::tcp::{socket2::TcpKeepalive, TcpSettings};
use redis::{
    AsyncConnectionConfig, Client, ConnectionAddr, ConnectionInfo, IntoConnectionInfo, RedisError,
    TlsCertificates,
};

use super::credentials::Credentials;
use super::node_names::Routes;
use super::ConnectionSettings;
use crate::error::{describe_chain, StoreError, StoreResult};

pub(super) enum RedisClient {
    /// The client and how each of its connections is opened.
    Standalone(Box<Client>, AsyncConnectionConfig),
    Cluster(Box<ClusterTarget>),
}

/// What a cluster client is built from. A new one is built when nodes appear that the
/// current one cannot verify (see `node_names`).
pub(super) struct ClusterTarget {
    /// The seed alone, verified against its own name: it says which nodes to rename.
    pub(super) seed: Client,
    /// Nothing learned yet: what each `CLUSTER NODES` reply is read against.
    pub(super) routes: Routes,
    /// How the seed connection is opened (with the credentials, if any).
    pub(super) seed_config: AsyncConnectionConfig,
    certificates: TlsCertificates,
    tcp: TcpSettings,
    credentials: Option<Arc<Credentials>>,
    /// The URL's username, password and database, for a node dialled alone.
    redis_settings: redis::RedisConnectionInfo,
}

impl ClusterTarget {
    /// Dials one node alone, verified against `host` as a cluster client that does not rename
    /// it does, and authenticates as the store does; the connection is dropped at once.
    pub(super) async fn dial_node(&self, host: &str, port: u16) -> Result<(), String> {
        let info = tls_connection_info(host, port)
            .map_err(|e| e.message)?
            .set_redis_settings(self.redis_settings.clone())
            .set_tcp_settings(self.tcp.clone());
        let client = Client::build_with_tls(info, self.certificates.clone())
            .map_err(|e| describe_chain(&e))?;
        client
            .get_multiplexed_async_connection_with_config(&self.seed_config)
            .await
            .map(drop)
            .map_err(|e| describe_chain(&e))
    }
}

/// Checks the settings (URL, TLS material) and builds the client; connects nothing yet.
pub(super) fn build_client(
    settings: &ConnectionSettings,
    credentials: Option<&Arc<Credentials>>,
) -> StoreResult<RedisClient> {
    let address = &settings.address;
    let mut redis_settings = redis::RedisConnectionInfo::default().set_db(address.db);
    if let Some(username) = &address.username {
        redis_settings = redis_settings.set_username(username);
    }
    if let Some(password) = &address.password {
        redis_settings = redis_settings.set_password(password);
    }
    // Keepalive finds a dead peer when idle; the user timeout when writes go unacknowledged.
    let keepalive = TcpKeepalive::new()
        .with_time(Duration::from_secs(15))
        .with_interval(Duration::from_secs(5));
    let tcp = TcpSettings::default()
        .set_nodelay(true)
        .set_keepalive(keepalive)
        .set_user_timeout(settings.command_timeout.max(Duration::from_secs(1)));
    let info = tls_connection_info(&address.host, address.port)?
        .set_redis_settings(redis_settings.clone())
        .set_tcp_settings(tcp.clone());
    let certificates = settings.tls.certificates()?;
    let seed = Client::build_with_tls(info, certificates.clone()).map_err(tls_error)?;
    if !settings.cluster {
        let config = connection_config(credentials);
        return Ok(RedisClient::Standalone(Box::new(seed), config));
    }
    if address.db != 0 {
        return Err(StoreError::invalid_config(
            "redisUrl: Redis Cluster has only database 0",
        ));
    }
    let target = ClusterTarget {
        seed,
        routes: Routes::for_seed(&address.host),
        seed_config: connection_config(credentials),
        certificates,
        tcp,
        credentials: credentials.cloned(),
        redis_settings,
    };
    // Built once here so that a bad setting fails the constructor, not every attempt.
    cluster_client(settings, &target, None)?;
    Ok(RedisClient::Cluster(Box::new(target)))
}

/// A connection writes the commands it holds once no other call is queued, or once it holds
/// this many bytes (plus the command that crossed it): a bound on a batch, never a wait. At
/// tokio-util's default, which redis-rs keeps (8 KiB), every 10 KB set was a `writev` of its
/// own. The buffer grows by doubling and keeps its largest size after a burst: about twice
/// this, or this plus the largest command if that is more, per connection.
const WRITE_BATCH_BYTES: usize = 64 * 1024;

/// How a standalone connection (and a cluster's seed) is opened. The supervisor bounds each
/// attempt by `connectTimeoutMs`, which names the cause; each call runs under its own deadline
/// (`Supervisor::call`), so the crate's 500 ms response default must not cut in first with a
/// cause-less "timed out". With credentials, the connection authenticates with the newest
/// and re-authenticates with each newer set.
pub(super) fn connection_config(credentials: Option<&Arc<Credentials>>) -> AsyncConnectionConfig {
    let config = AsyncConnectionConfig::new()
        .set_connection_timeout(None)
        .set_response_timeout(None)
        .set_write_backpressure_boundary(WRITE_BATCH_BYTES);
    match credentials {
        Some(credentials) => config.set_credentials_provider(credentials.streaming()),
        None => config,
    }
}

fn tls_error(error: RedisError) -> StoreError {
    StoreError::invalid_config(format!("tls: {}", describe_chain(&error)))
}

fn tls_connection_info(host: &str, port: u16) -> StoreResult<ConnectionInfo> {
    ConnectionAddr::TcpTls {
        host: host.to_owned(),
        port,
        insecure: false,
        tls_params: None,
    }
    .into_connection_info()
    .map_err(|e| StoreError::invalid_config(describe_chain(&e)))
}

/// A cluster client that starts from the seed and from every primary that was up, and dials
/// the nodes `routes` renames by the seed's name.
pub(super) fn cluster_client(
    settings: &ConnectionSettings,
    target: &ClusterTarget,
    routes: Option<&Routes>,
) -> StoreResult<ClusterClient> {
    let address = &settings.address;
    let mut initial = vec![tls_connection_info(&address.host, address.port)?];
    for (host, port) in routes.map(|r| r.primaries.as_slice()).unwrap_or_default() {
        // redis-rs renames these through the map too.
        initial.push(tls_connection_info(host, *port)?);
    }
    let mut builder = ClusterClientBuilder::new(initial)
        .certs(target.certificates.clone())
        .tcp_settings(target.tcp.clone())
        // redis-rs waits for every starting node: one that drops packets must not use up
        // the whole attempt, which runs under `connectTimeoutMs`.
        .connection_timeout(settings.connect_timeout / 2)
        .response_timeout(settings.command_timeout)
        .write_backpressure_boundary(WRITE_BATCH_BYTES);
    if let Some(routes) = routes.filter(|r| r.renames()) {
        builder = builder
            .node_address_map(routes.address_map())
            .async_dns_resolver(routes.resolver());
    }
    if let Some(username) = &address.username {
        builder = builder.username(username);
    }
    if let Some(password) = &address.password {
        builder = builder.password(password);
    }
    if let Some(credentials) = &target.credentials {
        // Each node's connection subscribes: new ones authenticate with the newest
        // credentials, live ones re-authenticate.
        builder = builder.set_credentials_provider(credentials.streaming());
    }
    builder.build().map_err(tls_error)
}
