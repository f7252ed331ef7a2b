//! "Is the link healthy": one PING under `commandTimeoutMs`, and what its failure says.

use std::future::Future;

use redis::{RedisError, RedisResult};

use super::supervisor::{server_error, Core};
use super::Connection;
use crate::error::describe_chain;

/// A connection the health check can PING: the store's `Connection`, or a test's fake.
pub(crate) trait Ping {
    fn ping(&mut self) -> impl Future<Output = RedisResult<()>> + Send;
}

impl Ping for Connection {
    fn ping(&mut self) -> impl Future<Output = RedisResult<()>> + Send {
        Connection::ping(self)
    }
}

/// Why a health check failed, and whether the server said anything at all: a `BUSY` or
/// `LOADING` reply proves the link works, silence or an I/O error does not.
pub(super) struct HealthFailure {
    pub cause: String,
    pub silent: bool,
}

/// PINGs the connection (a cluster's every primary); what failed, when it did not answer.
pub(super) async fn health_check<C: Ping>(
    core: &Core<C>,
    connection: &mut C,
) -> Option<HealthFailure> {
    match tokio::time::timeout(core.settings().command_timeout, connection.ping()).await {
        Ok(Ok(())) => {
            core.saw_reply();
            None
        }
        Ok(Err(error)) => Some(health_failure(&error)),
        Err(_) => Some(silence(core)),
    }
}

pub(super) fn health_failure(error: &RedisError) -> HealthFailure {
    HealthFailure {
        cause: format!("health check failed: {}", describe_chain(error)),
        silent: server_error(error).is_none(),
    }
}

pub(super) fn silence<C>(core: &Core<C>) -> HealthFailure {
    HealthFailure {
        cause: format!(
            "health check got no reply within {} ms",
            core.settings().command_timeout.as_millis()
        ),
        silent: true,
    }
}
