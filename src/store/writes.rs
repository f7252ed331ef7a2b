//! How a call that spans two hash slots (a record and its user's index) is sent: as one
//! atomic script or transaction on a standalone server, or one slot per command in a cluster
//! and on a server that refused that once (`CROSSSLOT`: the one endpoint of Azure Managed
//! Redis' Enterprise clustering policy). Every call that spans slots goes through
//! [`RedisStore::atomically`], so the choice is made in one place.
//!
//! Every script touches only the keys it declares: a server that checks slots refuses the
//! command before it runs anything, so a refused call wrote nothing and is redone one slot
//! per command.

use std::future::Future;
use std::sync::atomic::Ordering;

use redis::RedisError;

use super::redis::{
    eval_one_key, other_type, random_rank, set_with_ttl, wrong_type_names, RedisStore, INDEX_ADD,
    RECORD_SET,
};
use super::{INDEX_TTL_MARGIN_SECONDS, TRIM_BATCH};
use crate::conn::{server_error, CallError, Connection};
use crate::error::StoreError;

/// What a script says, in Redis' words, when it reaches a key of a slot that is not the one
/// of its declared keys, or is served by another node. The store's scripts touch only their
/// declared keys, so this comes only from a server that checks more than Redis does; such a
/// call is treated as refused (see [`RedisStore::atomically`]).
const UNDECLARED_KEY_ERRORS: [&str; 2] = [
    "non local key in a cluster node",
    "keys that do not hash to the same slot",
];

impl RedisStore {
    /// One slot per command: in a cluster, and on a server that refused `CROSSSLOT` once.
    fn one_slot(&self, connection: &Connection) -> bool {
        connection.is_cluster() || self.one_slot_per_command.load(Ordering::Acquire)
    }

    /// Whether calls go one slot per command now, before a connection says it is a cluster.
    pub(super) fn works_one_slot(&self) -> bool {
        self.options.cluster || self.one_slot_per_command.load(Ordering::Acquire)
    }

    /// Runs `atomic` (one script or transaction over both slots) unless the store works one
    /// slot per command. `Ok(None)` tells the caller to do the call one slot per command:
    /// always so in that mode, and when the server refused `atomic` for spanning slots (the
    /// store then switches for good, said once). Each atomic call is idempotent (a set writes
    /// the same record and score again, a delete and a heal remove what is still there), so a
    /// call redone one slot per command ends as it would have.
    pub(super) async fn atomically<T>(
        &self,
        connection: &Connection,
        atomic: impl Future<Output = Result<T, RedisError>>,
    ) -> Result<Option<T>, RedisError> {
        if self.one_slot(connection) {
            return Ok(None);
        }
        match atomic.await {
            Err(error) if self.refused_two_slots(&error) => Ok(None),
            done => done.map(Some),
        }
    }

    /// `set` one slot per command; returns the index sample for the trim.
    pub(super) async fn set_one_slot(
        &self,
        connection: &mut Connection,
        (record_key, index_key): (&str, &str),
        id: &str,
        json: &str,
        updated_at_ms: impl redis::ToRedisArgs,
    ) -> Result<Vec<redis::Value>, CallError> {
        let ttl = self.options.ttl_seconds;
        // Nothing is written when the index holds another type, the record included.
        let index_type: String = redis::cmd("TYPE")
            .arg(index_key)
            .query_async(connection)
            .await?;
        if index_type != "none" && index_type != "zset" {
            return Err(other_type(index_key));
        }
        self.write_record(connection, record_key, json).await?;
        eval_one_key(&INDEX_ADD, index_key)
            .arg(updated_at_ms)
            .arg(id)
            .arg(ttl + INDEX_TTL_MARGIN_SECONDS)
            .arg(self.options.list_limit)
            .arg(TRIM_BATCH)
            .arg(random_rank())
            .query_async(connection)
            .await
            .map_err(wrong_type_names(index_key))
    }

    /// The record half of a set one slot per command: one command, so that a migrating slot's
    /// `ASK` is followed for all of it, which writes nothing when the key holds another type.
    /// `SET … GET` is that command from Redis 6.2 on; it costs redis-server about a sixth of
    /// `record_set.lua`, which takes the document through Lua (README, "Redis Cluster"), and
    /// its reply, the document it replaced, is dropped. A server that refuses the option
    /// (`syntax error`: it ran nothing) gets the script from then on.
    async fn write_record(
        &self,
        connection: &mut Connection,
        record_key: &str,
        json: &str,
    ) -> Result<(), CallError> {
        let ttl = self.options.ttl_seconds;
        if !self.set_get_refused.load(Ordering::Acquire) {
            let replaced = set_with_ttl(record_key, json, ttl)
                .arg("GET")
                .query_async::<()>(connection)
                .await;
            match replaced {
                Err(error) if self.refused_set_get(&error) => {}
                done => return done.map_err(wrong_type_names(record_key)),
            }
        }
        eval_one_key(&RECORD_SET, record_key)
            .arg(json)
            .arg(ttl)
            .query_async::<()>(connection)
            .await
            .map_err(wrong_type_names(record_key))
    }

    /// Whether `error` is a server's refusal of `SET`'s `GET` option; if so, said once.
    fn refused_set_get(&self, error: &RedisError) -> bool {
        let refused = server_error(error)
            .is_some_and(|(code, detail)| code == "ERR" && detail.starts_with("syntax error"));
        if refused && !self.set_get_refused.swap(true, Ordering::AcqRel) {
            self.logger().info(
                "the server refuses SET's GET option (Redis before 6.2): a record written one \
                 slot per command now goes through a script",
            );
        }
        refused
    }

    /// Whether `error` refuses a call for spanning hash slots; if so, the store goes one slot
    /// per command from now on, and says so once.
    fn refused_two_slots(&self, error: &RedisError) -> bool {
        let Some((code, detail)) = server_error(error) else {
            return false;
        };
        let refused = code == "CROSSSLOT"
            || UNDECLARED_KEY_ERRORS
                .iter()
                .any(|words| detail.contains(words));
        if refused && !self.one_slot_per_command.swap(true, Ordering::AcqRel) {
            self.logger().warn(format!(
                "the server refuses a script or transaction over two hash slots ({code}, as \
                 Azure Managed Redis' Enterprise clustering policy does): calls now go one \
                 slot per command. If this endpoint is a Redis Cluster (OSS clustering policy), \
                 set `cluster: true`: reached as a standalone server, it answers MOVED for \
                 keys of other nodes"
            ));
        }
        refused
    }
}

/// A `MOVED` reply on a standalone connection: the endpoint is a Redis Cluster node (the OSS
/// clustering policy, or a cluster reached without `cluster: true`), and the message says how
/// to reach it. In cluster mode redis-rs follows `MOVED` itself.
pub(super) fn moved(error: CallError, cluster: bool) -> CallError {
    let CallError::Redis(redis_error) = &error else {
        return error;
    };
    match server_error(redis_error) {
        Some((code, detail)) if code == "MOVED" && !cluster => {
            CallError::Store(StoreError::unavailable(format!(
                "Redis refused the command: MOVED {detail}: the endpoint is a Redis Cluster \
                 node; for a cluster endpoint (Azure's OSS clustering policy) set \
                 `cluster: true`"
            )))
        }
        _ => error,
    }
}
