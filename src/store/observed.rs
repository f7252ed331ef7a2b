//! The stores' calls as the binding sees them: each one counted once it settles (calls,
//! errors by code, latency), and `stats()`. The work itself is in `redis.rs`, `listing.rs`
//! and `memory.rs`; counting it lives here, in one place.

use super::order::Turn;
use super::stats::{LastError, Operation, StatsSnapshot};
use super::{MemoryStore, RedisStore, StoreStatus};
use crate::error::{ErrorCode, StoreError, StoreResult};

impl RedisStore {
    /// `turn` is the call's [`turn`](RedisStore::turn), taken when it was made.
    pub async fn get(&self, id: &str, turn: Turn) -> StoreResult<Option<String>> {
        self.stats
            .observe_async(Operation::Get, self.run_get(id, turn))
            .await
    }

    pub async fn set(&self, id: &str, json: &str, turn: Turn) -> StoreResult<()> {
        self.stats
            .observe_async(Operation::Set, self.run_set(id, json, turn))
            .await
    }

    pub async fn delete(&self, id: &str, turn: Turn) -> StoreResult<()> {
        self.stats
            .observe_async(Operation::Delete, self.run_delete(id, turn))
            .await
    }

    /// The user's newest conversations as one JSON array, healing the index on the way.
    pub async fn list_by_user(&self, user_id: &str) -> StoreResult<String> {
        self.stats
            .observe_async(Operation::ListByUser, self.run_list_by_user(user_id))
            .await
    }

    /// Counts `calls` calls refused before they ran: a closed store, or an argument
    /// `index.js` refused.
    pub fn refused(&self, operation: Operation, calls: usize, error: &StoreError) {
        self.stats.refused(operation, calls, error);
    }

    pub fn stats(&self) -> StatsSnapshot {
        let vitals = self.supervisor.vitals();
        // The connection's causes are log lines already: no credentials, one line.
        let connection_error = vitals.last_error.map(|(cause, at)| LastError {
            code: ErrorCode::Unavailable,
            message: StoreError::unavailable(cause).message,
            at,
        });
        self.stats.snapshot(
            // `end` from the moment `close()` is called, as `status` says.
            if self.is_closing() {
                StoreStatus::End
            } else {
                StoreStatus::from(vitals.status)
            },
            vitals.status_since,
            vitals.reconnects,
            connection_error,
            self.credentials_expire_at(),
        )
    }
}

impl MemoryStore {
    pub fn get(&self, id: &str) -> StoreResult<Option<String>> {
        self.stats.observe(Operation::Get, || self.run_get(id))
    }

    pub fn set(&self, id: &str, json: &str) -> StoreResult<()> {
        self.stats
            .observe(Operation::Set, || self.run_set(id, json))
    }

    pub fn delete(&self, id: &str) -> StoreResult<()> {
        self.stats
            .observe(Operation::Delete, || self.run_delete(id))
    }

    pub fn list_by_user(&self, user_id: &str) -> StoreResult<String> {
        self.stats
            .observe(Operation::ListByUser, || self.run_list_by_user(user_id))
    }

    /// Counts a call `index.js` refused before it reached the store.
    pub fn refused(&self, operation: Operation, error: &StoreError) {
        self.stats.refused(operation, 1, error);
    }

    pub fn stats(&self) -> StatsSnapshot {
        self.stats
            .snapshot(self.status(), self.status_since(), 0, None, None)
    }
}
