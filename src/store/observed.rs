//! The stores' calls as the binding sees them: each one counted once it settles (calls,
//! errors by code, latency), and `stats()`. The work itself is in `redis.rs`, `listing.rs`
//! and `memory.rs`; counting it lives here, in one place.

use std::any::Any;
use std::future::Future;
use std::panic::AssertUnwindSafe;

use futures_util::FutureExt;

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

    /// A batch: several calls of one kind run concurrently in the caller's task, each under its
    /// own deadline, so that their commands reach the connection in one poll and leave in one
    /// write. A call that panics fails alone, counted as refused (its panic skipped the
    /// counting); the others settle as they would have.
    pub async fn each<T, Fut>(
        &self,
        operation: Operation,
        calls: impl Iterator<Item = Fut>,
    ) -> Vec<StoreResult<T>>
    where
        Fut: Future<Output = StoreResult<T>>,
    {
        join_each(calls, |text| {
            self.stats
                .refused(operation, 1, &StoreError::unavailable("internal error"));
            Err(StoreError::unavailable(format!("internal error: {text}")))
        })
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

/// Runs `calls` concurrently; one that panics settles as `on_panic` makes of the panic's text.
async fn join_each<T, Fut>(
    calls: impl Iterator<Item = Fut>,
    on_panic: impl Fn(&str) -> StoreResult<T>,
) -> Vec<StoreResult<T>>
where
    Fut: Future<Output = StoreResult<T>>,
{
    let on_panic = &on_panic;
    let calls = calls.map(|call| async move {
        AssertUnwindSafe(call)
            .catch_unwind()
            .await
            .unwrap_or_else(|payload| on_panic(&panic_text(payload.as_ref())))
    });
    futures_util::future::join_all(calls).await
}

/// A panic's payload as text (a `panic!` with a message gives a `&str` or a `String`).
pub fn panic_text(payload: &(dyn Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_default()
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorCode;

    #[tokio::test]
    async fn a_call_of_a_batch_that_panics_fails_alone() {
        let panics = std::cell::Cell::new(0);
        let calls = (0..3).map(|i| async move {
            tokio::task::yield_now().await;
            if i == 1 {
                panic!("call {i} broke");
            }
            Ok(i)
        });
        let outcomes = join_each(calls, |text| {
            panics.set(panics.get() + 1);
            Err(StoreError::unavailable(format!("internal error: {text}")))
        })
        .await;
        assert_eq!(panics.get(), 1);
        assert_eq!(outcomes[0].as_ref().ok(), Some(&0));
        assert_eq!(outcomes[2].as_ref().ok(), Some(&2));
        let error = outcomes[1].as_ref().unwrap_err();
        assert_eq!(error.code, ErrorCode::Unavailable);
        assert_eq!(error.message, "internal error: call 1 broke");
    }
}
