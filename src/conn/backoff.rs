//! Reconnect delays: exponential from a base, capped, with jitter.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    pub base: Duration,
    pub max: Duration,
}

impl Backoff {
    /// Delay before reconnect attempt `attempt` (1-based): "equal jitter", so the wait is
    /// between half and all of the capped exponential step and clients spread out.
    pub fn delay(&self, attempt: u32, random: u64) -> Duration {
        let step = self
            .base
            .saturating_mul(1u32 << attempt.saturating_sub(1).min(20))
            .min(self.max);
        let half = step / 2;
        let spread = (step - half).as_millis() as u64;
        half + Duration::from_millis(if spread == 0 {
            0
        } else {
            random % (spread + 1)
        })
    }
}

/// A few bits of randomness for jitter; no crate needed for this.
pub fn jitter_seed() -> u64 {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos() as u64 ^ d.as_secs())
        .unwrap_or(0);
    // xorshift64* step over the clock, so consecutive calls differ.
    let mut x = nanos | 1;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    x.wrapping_mul(0x2545_F491_4F6C_DD1D)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_exponentially_then_caps_with_jitter_inside_the_step() {
        let b = Backoff {
            base: Duration::from_millis(100),
            max: Duration::from_millis(5000),
        };
        for (attempt, step) in [
            (1, 100),
            (2, 200),
            (3, 400),
            (6, 3200),
            (7, 5000),
            (40, 5000),
        ] {
            for random in [0, 7, u64::MAX] {
                let d = b.delay(attempt, random).as_millis() as u64;
                assert!(
                    d >= step / 2 && d <= step,
                    "attempt {attempt}: {d} not in [{}, {step}]",
                    step / 2
                );
            }
        }
        assert_eq!(b.delay(1, 0), Duration::from_millis(50));
    }
}
