//! What a failed call says of the connection, and the store's error for it.

use redis::{ErrorKind, RedisError};

use super::Core;
use crate::error::{describe_chain, StoreError};

/// What a call's round trips can fail with: Redis, or a rule of the store.
#[derive(Debug)]
pub(crate) enum CallError {
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

/// The server's error code and text, looking inside an aborted transaction or a pipeline,
/// where redis-rs reports only `EXECABORT` or the first command's kind.
pub(crate) fn server_error(error: &RedisError) -> Option<(String, String)> {
    let errors = error.clone().into_server_errors()?;
    let (_, first) = errors.first()?;
    Some((
        first.code().to_owned(),
        first.details().unwrap_or_default().to_owned(),
    ))
}

/// A refusal that fails its call alone (NOPERM, a script error, …). After a failover the old
/// primary answers READONLY, and a connection that lost its authentication answers NOAUTH:
/// those say the connection must go, as does any error that is not a refusal.
pub(crate) fn is_own_refusal(error: &RedisError) -> bool {
    server_error(error).is_some_and(|(code, _)| code != "READONLY" && code != "NOAUTH")
}

/// A call that failed with neither a refusal nor a broken link (a reply that did not
/// convert), as the caller reads it.
pub(crate) fn call_failed(error: &RedisError) -> StoreError {
    StoreError::unavailable(format!("Redis call failed: {}", describe_chain(error)))
}

/// A command the server refused, as the caller reads it: Redis's code and words.
pub(crate) fn refused(code: &str, detail: &str) -> StoreError {
    StoreError::unavailable(format!("Redis refused the command: {code} {detail}"))
}

impl<C> Core<C> {
    /// The store's error for a failed call sent `sent_ms` after start, after reporting what it
    /// says of the connection.
    pub(super) fn classify(&self, error: RedisError, generation: u64, sent_ms: u64) -> StoreError {
        if let Some((code, detail)) = server_error(&error) {
            let refusal = refused(&code, &detail);
            if is_own_refusal(&error) {
                self.saw_reply();
            } else {
                self.connection_failed(generation, &refusal.message);
            }
            return refusal;
        }
        let cause = describe_chain(&error);
        // A timeout (a cluster node's, from redis-rs) condemns only as ours does: when nothing
        // replied since the call was sent.
        let silent = !error.is_timeout() || self.silent_since(sent_ms);
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
        call_failed(&error)
    }
}
