//! The stores' calls as the binding sees them: each one counted once it settles (calls,
//! errors by code, latency), and `stats()`. The work itself is in `redis.rs`, `listing.rs`
//! and `memory.rs`; counting it lives here, in one place.

use std::any::Any;
use std::future::Future;
use std::panic::AssertUnwindSafe;

use futures_util::FutureExt;
use tokio::sync::oneshot;

use super::order::Turn;
use super::stats::{LastError, Operation, StatsSnapshot};
use super::{MemoryStore, RedisStore, StoreStatus};
use crate::error::{ErrorCode, StoreError, StoreResult};

impl RedisStore {
    /// `turn` is the call's [`turn`](RedisStore::turn), taken when it was made. `into` makes
    /// the JSON what the caller hands on, within the call: a panic there is the call's.
    pub async fn get<T>(
        &self,
        id: &str,
        turn: Turn,
        into: impl FnOnce(String) -> T,
    ) -> StoreResult<Option<T>> {
        let call = async { Ok(self.run_get(id, turn).await?.map(into)) };
        self.stats.observe_async(Operation::Get, call).await
    }

    pub async fn set(&self, id: &str, json: &str, turn: Turn) -> StoreResult<()> {
        self.stats
            .observe_async(Operation::Set, self.run_set(id, json, turn))
            .await
    }

    /// Several sets (id, JSON, turn, in call order). On a standalone server, when none waits
    /// for an earlier call on its id, they go as transactions of up to 16 sets, each with one
    /// script call that writes them ([`run_set_batch`](RedisStore::run_set_batch)); otherwise
    /// each goes as `set` does. Each is counted on its own; a panic in a transaction fails
    /// every set in it.
    pub async fn set_batch(&self, calls: Vec<(&str, &str, Turn)>) -> Vec<StoreResult<()>> {
        let together = calls.len() > 1
            && !self.works_one_slot()
            && calls.iter().all(|(_, _, turn)| turn.is_free());
        if !together {
            let sets = calls
                .into_iter()
                .map(|(id, json, turn)| self.set(id, json, turn));
            return run_batch(sets).await;
        }
        let (settle, settled): (Vec<_>, Vec<_>) = calls.iter().map(|_| oneshot::channel()).unzip();
        let counted = settled.into_iter().map(|settled| {
            self.stats.observe_async(Operation::Set, async move {
                settled.await.unwrap_or_else(|_| {
                    Err(StoreError::unavailable(
                        "internal error: the batch ended without settling the set",
                    ))
                })
            })
        });
        // A panic in a transaction fails its sets (`run_set_batch` catches it there).
        let write = async move {
            let outcomes = self.run_set_batch(calls).await;
            for (settle, outcome) in settle.into_iter().zip(outcomes) {
                let _ = settle.send(outcome);
            }
        };
        futures_util::future::join(write, run_batch(counted))
            .await
            .1
    }

    pub async fn delete(&self, id: &str, turn: Turn) -> StoreResult<()> {
        self.stats
            .observe_async(Operation::Delete, self.run_delete(id, turn))
            .await
    }

    /// The user's newest conversations as one JSON array, healing the index on the way; `into`
    /// as for [`get`](RedisStore::get).
    pub async fn list_by_user<T>(
        &self,
        user_id: &str,
        into: impl FnOnce(String) -> T,
    ) -> StoreResult<T> {
        let call = async { self.run_list_by_user(user_id).await.map(into) };
        self.stats.observe_async(Operation::ListByUser, call).await
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

/// A batch: the calls of one native call (each one of the store's observed calls, which
/// counts itself) run concurrently in the caller's task, so that their commands reach the
/// connection in one poll and leave in one write. A call that panics fails alone, with an
/// internal error; the others settle as they would have.
pub async fn run_batch<T, Fut>(calls: impl Iterator<Item = Fut>) -> Vec<StoreResult<T>>
where
    Fut: Future<Output = StoreResult<T>>,
{
    let calls = calls.map(|call| async move {
        AssertUnwindSafe(call)
            .catch_unwind()
            .await
            .unwrap_or_else(|payload| Err(internal_error(payload.as_ref())))
    });
    futures_util::future::join_all(calls).await
}

/// What a panic becomes for its caller: `STORE_UNAVAILABLE`, with the panic's text.
pub fn internal_error(payload: &(dyn Any + Send)) -> StoreError {
    StoreError::unavailable(format!("internal error: {}", panic_text(payload)))
}

/// A panic's payload as text (a `panic!` with a message gives a `&str` or a `String`;
/// `std::panic::panic_any` anything else).
fn panic_text(payload: &(dyn Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".to_owned())
}

impl MemoryStore {
    /// `into` as for [`RedisStore::get`].
    pub fn get<T>(&self, id: &str, into: impl FnOnce(String) -> T) -> StoreResult<Option<T>> {
        self.stats
            .observe(Operation::Get, || Ok(self.run_get(id)?.map(into)))
    }

    pub fn set(&self, id: &str, json: &str) -> StoreResult<()> {
        self.stats
            .observe(Operation::Set, || self.run_set(id, json))
    }

    pub fn delete(&self, id: &str) -> StoreResult<()> {
        self.stats
            .observe(Operation::Delete, || self.run_delete(id))
    }

    pub fn list_by_user<T>(&self, user_id: &str, into: impl FnOnce(String) -> T) -> StoreResult<T> {
        self.stats.observe(Operation::ListByUser, || {
            self.run_list_by_user(user_id).map(into)
        })
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
    use crate::store::stats::CallStats;

    #[tokio::test]
    async fn a_call_of_a_batch_that_panics_fails_alone_and_is_counted_once() {
        let stats = CallStats::default();
        let calls = (0..3).map(|i| {
            stats.observe_async(Operation::Get, async move {
                tokio::task::yield_now().await;
                if i == 1 {
                    panic!("call {i} broke");
                }
                Ok(i)
            })
        });
        let outcomes = run_batch(calls).await;
        assert_eq!(outcomes[0].as_ref().ok(), Some(&0));
        assert_eq!(outcomes[2].as_ref().ok(), Some(&2));
        let error = outcomes[1].as_ref().unwrap_err();
        assert_eq!(error.code, ErrorCode::Unavailable);
        assert_eq!(error.message, "internal error: call 1 broke");
        let get = stats.operation(Operation::Get);
        assert_eq!(get.calls, 3);
        assert_eq!(get.errors, vec![(ErrorCode::Unavailable, 1)]);
    }

    #[test]
    fn a_panic_says_what_it_said_or_that_it_said_nothing() {
        let text = |payload: Box<dyn Any + Send>| internal_error(payload.as_ref()).message;
        assert_eq!(text(Box::new("static")), "internal error: static");
        assert_eq!(text(Box::new(String::from("made"))), "internal error: made");
        assert_eq!(
            text(Box::new(42_u8)),
            "internal error: a panic without a message"
        );
    }

    #[tokio::test]
    async fn a_call_that_panics_alone_is_counted_once_whichever_store() {
        let stats = CallStats::default();
        let call = stats.observe_async::<()>(Operation::ListByUser, async {
            tokio::task::yield_now().await;
            panic!("list broke")
        });
        let caught = AssertUnwindSafe(call).catch_unwind().await;
        assert!(caught.is_err());
        let caught = std::panic::catch_unwind(AssertUnwindSafe(|| {
            stats.observe(Operation::Set, || -> StoreResult<()> {
                panic!("set broke")
            })
        }));
        assert!(caught.is_err());
        for operation in [Operation::ListByUser, Operation::Set] {
            let counted = stats.operation(operation);
            assert_eq!(counted.calls, 1, "{operation:?}");
            assert_eq!(counted.errors, vec![(ErrorCode::Unavailable, 1)]);
        }
        let last = stats.last_error().expect("a panic is the last error");
        assert_eq!(
            (last.code, last.message.as_str()),
            (ErrorCode::Unavailable, "internal error")
        );
    }
}
