//! What `stats()` reports of the connection: since when the status holds, how many times
//! the store reconnected, and when the last connection failure happened. Atomics only.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use super::Status;

/// Milliseconds since the Unix epoch, as JavaScript's `Date.now()`.
fn epoch_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

pub(crate) struct Vitals {
    status_since_ms: AtomicU64,
    reconnects: AtomicU64,
    last_error_ms: AtomicU64,
}

impl Default for Vitals {
    fn default() -> Self {
        Vitals {
            status_since_ms: AtomicU64::new(epoch_ms()),
            reconnects: AtomicU64::new(0),
            last_error_ms: AtomicU64::new(0),
        }
    }
}

/// A reading of `Vitals` with the status and the last connection failure's text.
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

    pub(super) fn failed(&self) {
        self.last_error_ms.store(epoch_ms(), Ordering::Relaxed);
    }

    pub(super) fn read(&self, status: Status, last_error: Option<String>) -> ConnectionVitals {
        ConnectionVitals {
            status,
            status_since: self.status_since_ms.load(Ordering::Relaxed),
            reconnects: self.reconnects.load(Ordering::Relaxed),
            last_error: last_error.map(|cause| (cause, self.last_error_ms.load(Ordering::Relaxed))),
        }
    }
}
