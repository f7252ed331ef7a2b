//! What `stats()` reports of the connection: since when the status holds, how many times
//! the store reconnected, and the last connection failure with its time. Atomics, and the
//! failure, cause and time together, behind one mutex.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use super::Status;
use crate::store::epoch_ms;

pub(crate) struct Vitals {
    status_since_ms: AtomicU64,
    reconnects: AtomicU64,
    /// The last connection failure's cause and when it happened (epoch ms): one value, so
    /// that no reader sees a cause without its time.
    last_error: Mutex<Option<(String, u64)>>,
}

impl Default for Vitals {
    fn default() -> Self {
        Vitals {
            status_since_ms: AtomicU64::new(epoch_ms()),
            reconnects: AtomicU64::new(0),
            last_error: Mutex::new(None),
        }
    }
}

/// A reading of `Vitals` with the status.
#[derive(Debug, Clone)]
pub(crate) struct ConnectionVitals {
    pub status: Status,
    /// Epoch ms.
    pub status_since: u64,
    pub reconnects: u64,
    /// The cause and when (epoch ms).
    pub last_error: Option<(String, u64)>,
}

impl Vitals {
    pub(super) fn status_changed(&self) {
        self.status_since_ms.store(epoch_ms(), Ordering::Relaxed);
    }

    /// A connection replaced one that was lost, or a cluster client was rebuilt.
    pub(super) fn reconnected(&self) {
        self.reconnects.fetch_add(1, Ordering::Relaxed);
    }

    pub(super) fn failed(&self, cause: &str) {
        *self.last_error.lock().unwrap_or_else(|e| e.into_inner()) =
            Some((cause.to_owned(), epoch_ms()));
    }

    /// The last connection failure's cause.
    pub(super) fn last_cause(&self) -> Option<String> {
        self.last_error
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
            .map(|(cause, _)| cause.clone())
    }

    pub(super) fn read(&self, status: Status) -> ConnectionVitals {
        ConnectionVitals {
            status,
            status_since: self.status_since_ms.load(Ordering::Relaxed),
            reconnects: self.reconnects.load(Ordering::Relaxed),
            last_error: self
                .last_error
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clone(),
        }
    }
}
