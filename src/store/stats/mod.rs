//! What the stores count of their calls: calls, errors by code and latency per operation,
//! and the last error. Counters are atomics and latencies fixed-bucket atomic histograms, so
//! recording never takes a lock and reading never blocks a call; only the last error, written
//! on failures alone, sits behind a mutex.

mod histogram;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::error::{ErrorCode, StoreError, StoreResult};
use histogram::Histogram;
pub use histogram::Latency;

/// The store calls that are counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    Get = 0,
    Set = 1,
    Delete = 2,
    ListByUser = 3,
}

impl Operation {
    pub const ALL: [Operation; 4] = [
        Operation::Get,
        Operation::Set,
        Operation::Delete,
        Operation::ListByUser,
    ];
}

pub const ERROR_CODES: [ErrorCode; 5] = [
    ErrorCode::Unavailable,
    ErrorCode::InvalidArgument,
    ErrorCode::CorruptRecord,
    ErrorCode::InvalidConfig,
    ErrorCode::Closed,
];

fn code_index(code: ErrorCode) -> usize {
    ERROR_CODES.iter().position(|c| *c == code).unwrap_or(0)
}

/// Milliseconds since the Unix epoch, as JavaScript's `Date.now()`.
pub fn epoch_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

#[derive(Default)]
struct OperationCounters {
    calls: AtomicU64,
    errors: [AtomicU64; ERROR_CODES.len()],
    latency: Histogram,
}

/// An error as `stats()` reports it: its message is already printable (`StoreError::new`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LastError {
    pub code: ErrorCode,
    pub message: String,
    /// Epoch ms.
    pub at: u64,
}

/// One operation's figures.
#[derive(Debug, Clone, PartialEq)]
pub struct OperationStats {
    pub calls: u64,
    /// Codes with a count above zero.
    pub errors: Vec<(ErrorCode, u64)>,
    pub latency: Latency,
}

#[derive(Default)]
pub struct CallStats {
    operations: [OperationCounters; 4],
    last_error: Mutex<Option<LastError>>,
}

impl CallStats {
    /// Counts one settled call that took `elapsed`.
    pub fn record<T>(&self, operation: Operation, elapsed: Duration, result: &StoreResult<T>) {
        let counters = &self.operations[operation as usize];
        counters.latency.record(elapsed);
        if let Err(error) = result {
            self.record_error(counters, error);
        }
        counters.calls.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts `calls` calls refused before they ran (a closed store, a bad argument).
    pub fn refused(&self, operation: Operation, calls: usize, error: &StoreError) {
        let counters = &self.operations[operation as usize];
        for _ in 0..calls {
            counters.latency.record(Duration::ZERO);
            self.record_error(counters, error);
        }
        counters.calls.fetch_add(calls as u64, Ordering::Relaxed);
    }

    fn record_error(&self, counters: &OperationCounters, error: &StoreError) {
        counters.errors[code_index(error.code)].fetch_add(1, Ordering::Relaxed);
        *self.last_error.lock().unwrap_or_else(|e| e.into_inner()) = Some(LastError {
            code: error.code,
            message: error.message.clone(),
            at: epoch_ms(),
        });
    }

    /// Runs a synchronous call and counts it.
    pub fn observe<T>(
        &self,
        operation: Operation,
        call: impl FnOnce() -> StoreResult<T>,
    ) -> StoreResult<T> {
        let started = Instant::now();
        let result = call();
        self.record(operation, started.elapsed(), &result);
        result
    }

    /// Runs an asynchronous call and counts it once it settles.
    pub async fn observe_async<T>(
        &self,
        operation: Operation,
        call: impl std::future::Future<Output = StoreResult<T>>,
    ) -> StoreResult<T> {
        let started = Instant::now();
        let result = call.await;
        self.record(operation, started.elapsed(), &result);
        result
    }

    pub fn operation(&self, operation: Operation) -> OperationStats {
        let counters = &self.operations[operation as usize];
        let errors = ERROR_CODES
            .iter()
            .zip(&counters.errors)
            .map(|(code, count)| (*code, count.load(Ordering::Relaxed)))
            .filter(|(_, count)| *count > 0)
            .collect();
        OperationStats {
            calls: counters.calls.load(Ordering::Relaxed),
            errors,
            latency: counters.latency.latency(),
        }
    }

    pub fn last_error(&self) -> Option<LastError> {
        self.last_error
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

/// A store's `stats()`, as the binding hands it to JavaScript.
#[derive(Debug, Clone)]
pub struct StatsSnapshot {
    pub status: super::StoreStatus,
    /// Epoch ms.
    pub status_since: u64,
    pub reconnects: u64,
    pub last_error: Option<LastError>,
    /// Epoch ms.
    pub credentials_expire_at: Option<f64>,
    /// In the order of `Operation::ALL`.
    pub operations: [OperationStats; 4],
}

impl CallStats {
    pub fn snapshot(
        &self,
        status: super::StoreStatus,
        status_since: u64,
        reconnects: u64,
        connection_error: Option<LastError>,
        credentials_expire_at: Option<f64>,
    ) -> StatsSnapshot {
        let call_error = self.last_error();
        // The newer of the last failed call and the last connection failure.
        let last_error = match (call_error, connection_error) {
            (Some(call), Some(connection)) if connection.at > call.at => Some(connection),
            (Some(call), _) => Some(call),
            (None, connection) => connection,
        };
        StatsSnapshot {
            status,
            status_since,
            reconnects,
            last_error,
            credentials_expire_at,
            operations: Operation::ALL.map(|operation| self.operation(operation)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calls_errors_and_the_last_error_are_counted_per_operation() {
        let stats = CallStats::default();
        let ok: StoreResult<()> = Ok(());
        stats.record(Operation::Get, Duration::from_millis(2), &ok);
        stats.record(Operation::Get, Duration::from_millis(4), &ok);
        let failed: StoreResult<()> = Err(StoreError::unavailable("no reply"));
        stats.record(Operation::Set, Duration::from_millis(1), &failed);
        stats.refused(Operation::Set, 2, &StoreError::closed());
        let get = stats.operation(Operation::Get);
        assert_eq!(get.calls, 2);
        assert!(get.errors.is_empty());
        assert!(get.latency.p50 <= get.latency.p99 && get.latency.p99 <= get.latency.max);
        assert_eq!(get.latency.max, 4.0);
        let set = stats.operation(Operation::Set);
        assert_eq!(set.calls, 3);
        assert_eq!(
            set.errors,
            vec![(ErrorCode::Unavailable, 1), (ErrorCode::Closed, 2)]
        );
        assert_eq!(stats.last_error().map(|e| e.code), Some(ErrorCode::Closed));
        assert_eq!(stats.operation(Operation::Delete).calls, 0);
    }
}
