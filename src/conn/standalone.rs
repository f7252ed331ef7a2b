//! A standalone server: its connector makes one multiplexed connection and PINGs it before
//! use; its watcher PINGs the connection when idle, so a half-open one is found too, and
//! condemns it on the first failure.

use std::sync::Arc;

use futures_util::future::BoxFuture;
use redis::{AsyncConnectionConfig, Client, ErrorKind};

use super::credentials::Credentials;
use super::health::{health_check, Ping};
use super::supervisor::{Connector, Core, Pause, Watcher};
use super::Connection;
use crate::error::describe_chain;

pub(super) struct StandaloneConnector {
    client: Box<Client>,
    config: AsyncConnectionConfig,
    /// Told when the server refuses the credentials a new connection authenticated with.
    credentials: Option<Arc<Credentials>>,
}

impl StandaloneConnector {
    pub(super) fn new(
        client: Box<Client>,
        config: AsyncConnectionConfig,
        credentials: Option<Arc<Credentials>>,
    ) -> Arc<Self> {
        Arc::new(StandaloneConnector {
            client,
            config,
            credentials,
        })
    }
}

impl Connector<Connection> for StandaloneConnector {
    fn connect<'a>(&'a self, _: &'a Core<Connection>) -> BoxFuture<'a, Result<Connection, String>> {
        Box::pin(async move {
            let mut connection = self
                .client
                .get_multiplexed_async_connection_with_config(&self.config)
                .await
                .map(Connection::Standalone)
                .map_err(|e| {
                    // WRONGPASS (or the store's own "credentials unavailable", which the
                    // rotation retries anyway).
                    if e.kind() == ErrorKind::AuthenticationFailed {
                        if let Some(credentials) = &self.credentials {
                            credentials.refused_by_server();
                        }
                    }
                    describe_chain(&e)
                })?;
            // Without credentials nothing is sent while connecting: a PING finds NOAUTH (and a
            // server that accepts TCP but never answers) before the store reports ready.
            connection.ping().await.map_err(|e| describe_chain(&e))?;
            Ok(connection)
        })
    }
}

/// Generic over the connection, so the core's tests watch their fake with it.
pub(crate) struct StandaloneWatcher;

impl<C: Ping + Send + Sync + 'static> Watcher<C> for StandaloneWatcher {
    fn watch<'a>(
        &'a self,
        core: &'a Core<C>,
        mut connection: C,
        generation: u64,
    ) -> BoxFuture<'a, Option<C>> {
        Box::pin(async move {
            let interval = core.settings().health_check_interval;
            loop {
                // Due one interval after the last reply, so an idle connection is checked in
                // time; a busy one is not checked at all.
                let due = interval.saturating_sub(core.idle_for());
                if core.pause(generation, due).await? == Pause::Woken || core.idle_for() < interval
                {
                    continue;
                }
                let checked = health_check(core, &mut connection);
                if let Some(failure) = core.unless_condemned(generation, checked).await? {
                    core.condemn(generation, &failure.cause);
                    return None;
                }
            }
        })
    }

    fn call_failed(&self, core: &Core<C>, generation: u64, cause: &str) {
        core.condemn(generation, cause);
    }
}
