//! The connection to Redis: URL and TLS settings, the clients, and the supervisor that keeps
//! one multiplexed connection alive, replaces it when it fails, and drives its status. The
//! supervisor's core is one module; a standalone server and a cluster each have their own
//! connector and watcher.

mod backoff;
mod client;
mod cluster;
mod connection;
mod credentials;
mod gates;
mod health;
mod node_names;
mod standalone;
mod supervisor;
pub(crate) mod tls;
mod url;

use std::sync::Arc;
use std::time::Duration;

use tokio::runtime::Handle;

use crate::error::StoreResult;
use crate::log::Logger;

pub(crate) use backoff::Backoff;
pub(crate) use connection::Connection;
pub use credentials::{CredentialSource, CredentialsProvider, Token};
pub(crate) use supervisor::{
    call_failed, is_own_refusal, refused, server_error, CallError, Status, Supervisor,
};
pub(crate) use tls::TlsOptions;
pub(crate) use url::ServerAddress;

/// Everything the supervisor needs to reach one Redis server.
#[derive(Clone)]
pub(crate) struct ConnectionSettings {
    pub address: ServerAddress,
    pub tls: TlsOptions,
    pub connect_timeout: Duration,
    pub command_timeout: Duration,
    pub health_check_interval: Duration,
    pub backoff: Backoff,
    /// Redis Cluster: the address is one seed node.
    pub cluster: bool,
}

/// Checks the settings (TLS material, a cluster's database), then starts connecting in the
/// background on `runtime`, with the connector and watcher of a standalone server or of a
/// cluster, and with credentials from `provider` when there is one.
pub(crate) fn supervise(
    settings: ConnectionSettings,
    provider: Option<CredentialsProvider>,
    logger: Logger,
    runtime: &Handle,
) -> StoreResult<Supervisor<Connection>> {
    let username = settings.address.username.clone();
    let credentials = provider.map(|p| credentials::Credentials::new(p, username));
    let mut supervisor = match client::build_client(&settings, credentials.as_ref())? {
        client::RedisClient::Standalone(client, config) => {
            let connector =
                standalone::StandaloneConnector::new(client, config, credentials.clone());
            Supervisor::start(
                settings,
                logger,
                connector,
                Arc::new(standalone::StandaloneWatcher),
                runtime,
            )
        }
        client::RedisClient::Cluster(target) => {
            let cluster = cluster::Cluster::new(target);
            Supervisor::start(settings, logger, cluster.clone(), cluster, runtime)
        }
    };
    if let Some(credentials) = credentials {
        supervisor.rotate(credentials, runtime);
    }
    Ok(supervisor)
}
