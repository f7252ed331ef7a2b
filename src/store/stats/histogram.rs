//! A latency histogram of fixed log-scale buckets, each an atomic counter: recording is two
//! relaxed atomic adds and a `fetch_max`, reading walks the buckets; neither ever waits.
//!
//! Buckets are HDR-style: below 8 µs one per microsecond, above that eight per power of two,
//! so a reported percentile is at most 12.5% above the true one (and never above `max`).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Sub-buckets per power of two (2^3).
const SUB_BITS: u32 = 3;
const SUB_COUNT: u64 = 1 << SUB_BITS;
/// Latencies are kept up to 2^40 µs (about 12 days); longer ones count in the last bucket.
const MAX_EXPONENT: u32 = 40;
const BUCKETS: usize = (SUB_COUNT + (MAX_EXPONENT - SUB_BITS + 1) as u64 * SUB_COUNT) as usize;

pub(crate) struct Histogram {
    buckets: [AtomicU64; BUCKETS],
    max_us: AtomicU64,
}

/// The bucket of `micros`.
fn bucket_of(micros: u64) -> usize {
    if micros < SUB_COUNT {
        return micros as usize;
    }
    let exponent = (63 - micros.leading_zeros()).min(MAX_EXPONENT);
    let shift = exponent - SUB_BITS;
    let sub = (micros >> shift).min(2 * SUB_COUNT - 1) & (SUB_COUNT - 1);
    (SUB_COUNT + u64::from(shift) * SUB_COUNT + sub) as usize
}

/// The largest value bucket `index` holds, in µs.
fn upper_bound(index: usize) -> u64 {
    let index = index as u64;
    if index < SUB_COUNT {
        return index;
    }
    let shift = (index - SUB_COUNT) / SUB_COUNT;
    let sub = (index - SUB_COUNT) % SUB_COUNT;
    ((SUB_COUNT + sub + 1) << shift) - 1
}

/// Percentiles and the maximum, in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Latency {
    pub p50: f64,
    pub p99: f64,
    pub max: f64,
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram {
            buckets: std::array::from_fn(|_| AtomicU64::new(0)),
            max_us: AtomicU64::new(0),
        }
    }
}

impl Histogram {
    pub(crate) fn record(&self, elapsed: Duration) {
        let micros = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
        self.buckets[bucket_of(micros)].fetch_add(1, Ordering::Relaxed);
        self.max_us.fetch_max(micros, Ordering::Relaxed);
    }

    /// A snapshot: calls recorded while it is read may or may not be in it.
    pub(crate) fn latency(&self) -> Latency {
        let counts: Vec<u64> = self
            .buckets
            .iter()
            .map(|b| b.load(Ordering::Relaxed))
            .collect();
        let max_us = self.max_us.load(Ordering::Relaxed);
        let total: u64 = counts.iter().sum();
        let to_ms = |micros: u64| micros as f64 / 1000.0;
        let percentile = |q: f64| {
            if total == 0 {
                return 0;
            }
            let rank = ((q * total as f64).ceil() as u64).max(1);
            let mut seen = 0;
            for (index, count) in counts.iter().enumerate() {
                seen += count;
                if seen >= rank {
                    return upper_bound(index).min(max_us);
                }
            }
            max_us
        };
        let p50 = percentile(0.50);
        let p99 = percentile(0.99).max(p50);
        Latency {
            p50: to_ms(p50),
            p99: to_ms(p99),
            max: to_ms(max_us.max(p99)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_value_falls_in_a_bucket_that_holds_it() {
        let mut value = 0u64;
        while value < 1 << 41 {
            let index = bucket_of(value);
            assert!(index < BUCKETS, "{value}");
            if value < 1 << MAX_EXPONENT {
                assert!(upper_bound(index) >= value, "{value}");
                assert!(index == 0 || upper_bound(index - 1) < value, "{value}");
                // Within 12.5% above the value.
                assert!(
                    upper_bound(index) as f64 <= value as f64 * 1.125 + 1.0,
                    "{value}"
                );
            }
            value = value * 9 / 8 + 1;
        }
    }

    #[test]
    fn percentiles_are_ordered_and_near_the_truth() {
        let histogram = Histogram::default();
        assert_eq!(histogram.latency(), Latency::default());
        for ms in 1..=100u64 {
            histogram.record(Duration::from_millis(ms));
        }
        let latency = histogram.latency();
        assert!(latency.p50 <= latency.p99 && latency.p99 <= latency.max);
        assert!((50.0..=50.0 * 1.125).contains(&latency.p50), "{latency:?}");
        assert!((99.0..=100.0).contains(&latency.p99), "{latency:?}");
        assert_eq!(latency.max, 100.0);
    }
}
