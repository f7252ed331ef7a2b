//! `stats()` of both native stores, as plain JavaScript objects of the `StoreStats` shape
//! (docs/DESIGN.md "Observability"), and the counting of calls `index.js` refused itself.

use std::collections::BTreeMap;

use napi_derive::napi;

use super::{NativeMemoryStore, NativeRedisStore, StoreStatus};
use crate::error::{ErrorCode, StoreError};
use crate::store::{self, Operation, StatsSnapshot, ERROR_CODES};

/// A store call, as `stats()` and the tracing channel name it.
#[napi(string_enum)]
pub enum StoreOperation {
    #[napi(value = "get")]
    Get,
    #[napi(value = "set")]
    Set,
    #[napi(value = "delete")]
    Delete,
    #[napi(value = "listByUser")]
    ListByUser,
}

impl From<StoreOperation> for Operation {
    fn from(operation: StoreOperation) -> Self {
        match operation {
            StoreOperation::Get => Operation::Get,
            StoreOperation::Set => Operation::Set,
            StoreOperation::Delete => Operation::Delete,
            StoreOperation::ListByUser => Operation::ListByUser,
        }
    }
}

/// Milliseconds; p50 ≤ p99 ≤ max.
#[napi(object)]
pub struct LatencyMs {
    pub p50: f64,
    pub p99: f64,
    pub max: f64,
}

#[napi(object)]
pub struct OperationStats {
    /// Settled calls.
    pub calls: f64,
    /// Failed calls by `code`, in the codes' alphabetical order; codes that never happened are absent.
    pub errors: BTreeMap<String, f64>,
    pub latency_ms: LatencyMs,
}

#[napi(object)]
pub struct OperationsStats {
    pub get: OperationStats,
    pub set: OperationStats,
    pub delete: OperationStats,
    pub list_by_user: OperationStats,
}

#[napi(object)]
pub struct LastError {
    #[napi(ts_type = "import('./index').StoreErrorCode")]
    pub code: String,
    pub message: String,
    /// Epoch ms.
    pub at: f64,
}

#[napi(object)]
pub struct NativeStoreStats {
    pub status: StoreStatus,
    /// Epoch ms.
    pub status_since: f64,
    pub reconnects: f64,
    pub last_error: Option<LastError>,
    /// Epoch ms.
    pub credentials_expire_at: Option<f64>,
    pub operations: OperationsStats,
}

fn operation_stats(stats: &store::OperationStats) -> OperationStats {
    OperationStats {
        calls: stats.calls as f64,
        errors: stats
            .errors
            .iter()
            .map(|(code, count)| (code.as_str().to_owned(), *count as f64))
            .collect(),
        latency_ms: LatencyMs {
            p50: stats.latency.p50,
            p99: stats.latency.p99,
            max: stats.latency.max,
        },
    }
}

impl From<StatsSnapshot> for NativeStoreStats {
    fn from(snapshot: StatsSnapshot) -> Self {
        let [get, set, delete, list_by_user] = &snapshot.operations;
        NativeStoreStats {
            status: snapshot.status.into(),
            status_since: snapshot.status_since as f64,
            reconnects: snapshot.reconnects as f64,
            last_error: snapshot.last_error.map(|error| LastError {
                code: error.code.as_str().to_owned(),
                message: error.message,
                at: error.at as f64,
            }),
            credentials_expire_at: snapshot.credentials_expire_at,
            operations: OperationsStats {
                get: operation_stats(get),
                set: operation_stats(set),
                delete: operation_stats(delete),
                list_by_user: operation_stats(list_by_user),
            },
        }
    }
}

/// A rejection `index.js` made itself, as the store's error.
fn refusal(code: &str, message: String) -> StoreError {
    let code = ERROR_CODES
        .into_iter()
        .find(|c| c.as_str() == code)
        .unwrap_or(ErrorCode::InvalidArgument);
    StoreError::new(code, message)
}

#[napi]
impl NativeRedisStore {
    /// A snapshot of the counters; never waits for a call.
    #[napi]
    pub fn stats(&self) -> NativeStoreStats {
        self.store.stats().into()
    }

    /// Counts a call `index.js` refused before it reached the store.
    #[napi(
        ts_args_type = "operation: import('./index').StoreOperation, code: string, message: string"
    )]
    pub fn record_refused(&self, operation: StoreOperation, code: String, message: String) {
        self.store
            .refused(operation.into(), 1, &refusal(&code, message));
    }
}

#[napi]
impl NativeMemoryStore {
    /// A snapshot of the counters.
    #[napi]
    pub fn stats(&self) -> NativeStoreStats {
        self.store.stats().into()
    }

    /// Counts a call `index.js` refused before it reached the store.
    #[napi(
        ts_args_type = "operation: import('./index').StoreOperation, code: string, message: string"
    )]
    pub fn record_refused(&self, operation: StoreOperation, code: String, message: String) {
        self.store
            .refused(operation.into(), &refusal(&code, message));
    }
}
