//! The connection to Redis: URL and TLS settings, and the supervisor that keeps one
//! multiplexed connection alive, replaces it when it fails, and drives `status`.

mod backoff;
mod client;
mod connection;
pub mod log;
mod node_names;
mod supervisor;
pub mod tls;
pub mod url;

use std::time::Duration;

pub use backoff::Backoff;
pub use connection::Connection;
pub use log::{LogLevel, LogSink, Logger};
pub use supervisor::{server_error, CallError, StoreStatus, Supervisor};
pub use tls::TlsOptions;
pub use url::ServerAddress;

/// Everything the supervisor needs to reach one Redis server.
#[derive(Clone)]
pub struct ConnectionSettings {
    pub address: ServerAddress,
    pub tls: TlsOptions,
    pub connect_timeout: Duration,
    pub command_timeout: Duration,
    pub health_check_interval: Duration,
    pub backoff: Backoff,
    /// Redis Cluster: the address is one seed node.
    pub cluster: bool,
}
