//! What the stores count of their calls: calls, errors by code and latency per operation,
//! and the last error. Counters are atomics and latencies fixed-bucket atomic histograms, so
//! recording never takes a lock and reading never blocks a call; only the last error, written
//! on failures alone, sits behind a mutex. A caller's own mistakes (a bad argument, a call on a
//! closed store) are counted but are never the last error: one bad call must not hide an
//! outage's cause from a health check.

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

/// `code`'s place in `ERROR_CODES`.
fn code_index(code: ErrorCode) -> usize {
    match code {
        ErrorCode::Unavailable => 0,
        ErrorCode::InvalidArgument => 1,
        ErrorCode::CorruptRecord => 2,
        ErrorCode::InvalidConfig => 3,
        ErrorCode::Closed => 4,
    }
}

/// The caller's own doing: counted in `errors`, never reported as `lastError`.
fn is_callers_fault(code: ErrorCode) -> bool {
    match code {
        ErrorCode::InvalidArgument | ErrorCode::InvalidConfig | ErrorCode::Closed => true,
        ErrorCode::Unavailable | ErrorCode::CorruptRecord => false,
    }
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

/// Counts a call that never settled (it panicked, or its task was dropped) once, as refused
/// with an internal error, when the call's locals are dropped: as the panic leaves the call,
/// before whoever catches it runs, so no catcher counts anything. It runs while a panic
/// unwinds, where a second panic aborts the process: it only adds to counters (`refused`:
/// atomics, and a lock that tolerates poisoning), and must stay so.
struct Unsettled<'a> {
    stats: &'a CallStats,
    operation: Operation,
    settled: bool,
}

impl<'a> Unsettled<'a> {
    fn new(stats: &'a CallStats, operation: Operation) -> Self {
        Unsettled {
            stats,
            operation,
            settled: false,
        }
    }
}

impl Drop for Unsettled<'_> {
    fn drop(&mut self) {
        if !self.settled {
            let error = StoreError::unavailable("internal error");
            self.stats.refused(self.operation, 1, &error);
        }
    }
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
        // The call first, so that a reader never sees more errors than calls.
        counters.calls.fetch_add(1, Ordering::Relaxed);
        match result {
            // Refused before any work (a bad argument, a closed store): not latency.
            Err(error) if is_callers_fault(error.code) => {}
            _ => counters.latency.record(elapsed),
        }
        if let Err(error) = result {
            self.record_error(counters, 1, error);
        }
    }

    /// Counts `calls` calls refused before they ran (a closed store, a bad argument), or
    /// ended by a panic: in `calls` and `errors`, not in the latency, which refusals would
    /// drag towards zero.
    pub fn refused(&self, operation: Operation, calls: usize, error: &StoreError) {
        let counters = &self.operations[operation as usize];
        counters.calls.fetch_add(calls as u64, Ordering::Relaxed);
        self.record_error(counters, calls as u64, error);
    }

    fn record_error(&self, counters: &OperationCounters, count: u64, error: &StoreError) {
        counters.errors[code_index(error.code)].fetch_add(count, Ordering::Relaxed);
        if count == 0 || is_callers_fault(error.code) {
            return;
        }
        *self.last_error.lock().unwrap_or_else(|e| e.into_inner()) = Some(LastError {
            code: error.code,
            message: error.message.clone(),
            at: epoch_ms(),
        });
    }

    /// Runs a synchronous call and counts it once it returns; one that panics is counted as
    /// [`Unsettled`] says.
    pub fn observe<T>(
        &self,
        operation: Operation,
        call: impl FnOnce() -> StoreResult<T>,
    ) -> StoreResult<T> {
        let mut guard = Unsettled::new(self, operation);
        let started = Instant::now();
        let result = call();
        guard.settled = true;
        self.record(operation, started.elapsed(), &result);
        result
    }

    /// Runs an asynchronous call and counts it once it settles; one that never does is counted
    /// as [`Unsettled`] says.
    pub async fn observe_async<T>(
        &self,
        operation: Operation,
        call: impl std::future::Future<Output = StoreResult<T>>,
    ) -> StoreResult<T> {
        let mut guard = Unsettled::new(self, operation);
        let started = Instant::now();
        let result = call.await;
        guard.settled = true;
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
        stats.record(
            Operation::Set,
            Duration::from_millis(1),
            &Err::<(), _>(StoreError::invalid_argument(
                "id: expected a non-empty string",
            )),
        );
        let get = stats.operation(Operation::Get);
        assert_eq!(get.calls, 2);
        assert!(get.errors.is_empty());
        assert!(get.latency.p50 <= get.latency.p99 && get.latency.p99 <= get.latency.max);
        assert_eq!(get.latency.max, 4.0);
        let set = stats.operation(Operation::Set);
        assert_eq!(set.calls, 4);
        assert_eq!(
            set.errors,
            vec![
                (ErrorCode::Unavailable, 1),
                (ErrorCode::InvalidArgument, 1),
                (ErrorCode::Closed, 2)
            ]
        );
        // The caller's own mistakes do not replace the outage's cause.
        assert_eq!(
            stats.last_error().map(|e| e.code),
            Some(ErrorCode::Unavailable)
        );
        assert_eq!(stats.operation(Operation::Delete).calls, 0);
    }

    #[test]
    fn refused_calls_are_not_latency() {
        let stats = CallStats::default();
        stats.record(Operation::Get, Duration::from_millis(4), &Ok::<(), _>(()));
        stats.refused(Operation::Get, 49, &StoreError::closed());
        stats.record(
            Operation::Get,
            Duration::ZERO,
            &Err::<(), _>(StoreError::closed()),
        );
        let get = stats.operation(Operation::Get);
        assert_eq!(get.calls, 51);
        assert_eq!(get.errors, vec![(ErrorCode::Closed, 50)]);
        assert!(get.latency.p50 >= 2.0, "p50 {}", get.latency.p50);
        assert_eq!(stats.last_error(), None);
    }

    #[test]
    fn every_code_has_its_own_place() {
        for (index, code) in ERROR_CODES.iter().enumerate() {
            assert_eq!(code_index(*code), index);
        }
    }
}
