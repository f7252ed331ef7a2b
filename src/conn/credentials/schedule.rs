//! When to fetch credentials again: the rotation schedule, as pure functions of the clock, so
//! its rules are tested without a provider or a server.
//!
//! - At the provider's refresh time (`refreshAt`, Azure's `refreshAfterTimestamp`) when it gave
//!   one before the expiry.
//! - Otherwise at 72–80% of the remaining lifetime (jittered, so instances spread out), and at
//!   least `MARGIN` (3 minutes, Azure's guidance) before the expiry when the lifetime allows,
//!   never before half of it.
//! - Credentials without an expiry are never refreshed.
//! - A failed fetch is retried with the store's reconnect backoff (see `Backoff`).
//!
//! Each live connection then re-authenticates with the new credentials after its own small
//! delay (`stagger`), so a store's connections (one per cluster node) do not send their AUTH
//! at the same moment.

use std::time::Duration;

/// Azure's guidance: re-authenticate at least this long before a token expires.
pub(crate) const MARGIN_MS: f64 = 180_000.0;
/// Refresh at this fraction of the remaining lifetime at most.
const LATEST_FRACTION: f64 = 0.8;
/// The jitter takes up to this fraction off the refresh delay.
const JITTER_FRACTION: f64 = 0.1;
/// The most one connection waits before it re-authenticates with new credentials.
const MAX_STAGGER_MS: f64 = 10_000.0;
/// Ten years: longer delays are clamped (a far-future expiry must not overflow a timer).
const LONGEST_MS: f64 = 315_360_000_000.0;

/// What the schedule needs of one set of credentials: epoch milliseconds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Lifetime {
    pub expires_at: Option<f64>,
    pub refresh_at: Option<f64>,
}

pub(crate) fn millis(ms: f64) -> Duration {
    Duration::from_millis(ms.clamp(0.0, LONGEST_MS) as u64)
}

/// How long after `now` (epoch ms) to fetch new credentials; `None`: never. `jitter` is in
/// [0, 1).
pub(crate) fn refresh_in(now: f64, lifetime: Lifetime, jitter: f64) -> Option<Duration> {
    let expires_at = lifetime.expires_at?;
    let left = expires_at - now;
    if left <= 0.0 {
        return Some(Duration::ZERO);
    }
    if let Some(refresh_at) = lifetime.refresh_at.filter(|r| *r < expires_at) {
        // The provider's own refresh time, spread over a tenth of what is left after it.
        let spread = ((expires_at - refresh_at) * JITTER_FRACTION).min(MAX_STAGGER_MS);
        return Some(millis(refresh_at - now + spread * jitter));
    }
    let latest = (left * LATEST_FRACTION).min((left - MARGIN_MS).max(left / 2.0));
    Some(millis(latest * (1.0 - JITTER_FRACTION * jitter)))
}

/// How long one connection waits before it re-authenticates with credentials that expire at
/// `expires_at`: up to a tenth of their remaining lifetime, at most `MAX_STAGGER_MS`, and at
/// most half the time left before the credentials it has now (`old_expires_at`) expire.
pub(crate) fn stagger(
    now: f64,
    expires_at: Option<f64>,
    old_expires_at: Option<f64>,
    jitter: f64,
) -> Duration {
    let Some(expires_at) = expires_at else {
        return Duration::ZERO;
    };
    let mut spread = ((expires_at - now) / 10.0).clamp(0.0, MAX_STAGGER_MS);
    if let Some(old) = old_expires_at {
        spread = spread.min(((old - now) / 2.0).max(0.0));
    }
    millis(spread * jitter)
}

/// A number in [0, 1) from a random seed.
pub(crate) fn unit(random: u64) -> f64 {
    (random >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINUTE: f64 = 60_000.0;
    const NOW: f64 = 1_800_000_000_000.0;

    fn expiring_in(ms: f64) -> Lifetime {
        Lifetime {
            expires_at: Some(NOW + ms),
            refresh_at: None,
        }
    }

    fn secs(d: Duration) -> f64 {
        d.as_secs_f64()
    }

    #[test]
    fn an_hour_token_is_refreshed_at_72_to_80_percent_of_its_lifetime() {
        let earliest = refresh_in(NOW, expiring_in(60.0 * MINUTE), 0.999_999).unwrap();
        let latest = refresh_in(NOW, expiring_in(60.0 * MINUTE), 0.0).unwrap();
        assert_eq!(secs(latest), 48.0 * 60.0);
        assert!((secs(earliest) - 0.72 * 3600.0).abs() < 1.0, "{earliest:?}");
    }

    #[test]
    fn at_least_three_minutes_before_expiry_when_the_lifetime_allows() {
        // 80% of 10 minutes would leave 2 minutes.
        let d = refresh_in(NOW, expiring_in(10.0 * MINUTE), 0.0).unwrap();
        assert_eq!(secs(d), 7.0 * 60.0);
        for jitter in [0.0, 0.5, 0.99] {
            for minutes in [7.0, 10.0, 30.0, 60.0, 24.0 * 60.0] {
                let d = refresh_in(NOW, expiring_in(minutes * MINUTE), jitter).unwrap();
                assert!(minutes * 60.0 - secs(d) >= 180.0, "{minutes} min: {d:?}");
            }
        }
    }

    #[test]
    fn short_lifetimes_refresh_at_half_and_never_later_than_80_percent() {
        // 4 minutes cannot keep 3 in reserve: half of it, not 1 minute.
        let d = refresh_in(NOW, expiring_in(4.0 * MINUTE), 0.0).unwrap();
        assert_eq!(secs(d), 120.0);
        let d = refresh_in(NOW, expiring_in(5_000.0), 0.0).unwrap();
        assert_eq!(d, Duration::from_millis(2_500));
        let d = refresh_in(NOW, expiring_in(5_000.0), 0.999).unwrap();
        assert!(d >= Duration::from_millis(2_250) && d < Duration::from_millis(2_500));
    }

    #[test]
    fn the_providers_refresh_time_is_taken_when_before_expiry() {
        let lifetime = Lifetime {
            expires_at: Some(NOW + 60.0 * MINUTE),
            refresh_at: Some(NOW + 30.0 * MINUTE),
        };
        assert_eq!(secs(refresh_in(NOW, lifetime, 0.0).unwrap()), 1800.0);
        // Spread by at most 10 seconds after it.
        let late = refresh_in(NOW, lifetime, 0.999).unwrap();
        assert!(secs(late) > 1800.0 && secs(late) < 1810.0, "{late:?}");
        // A refresh time at or after the expiry is ignored.
        let after = Lifetime {
            refresh_at: Some(NOW + 61.0 * MINUTE),
            ..lifetime
        };
        assert_eq!(secs(refresh_in(NOW, after, 0.0).unwrap()), 48.0 * 60.0);
        // One in the past means now.
        let past = Lifetime {
            refresh_at: Some(NOW - MINUTE),
            ..lifetime
        };
        assert_eq!(refresh_in(NOW, past, 0.0).unwrap(), Duration::ZERO);
    }

    #[test]
    fn no_expiry_no_refresh_and_expired_means_now() {
        let forever = Lifetime {
            expires_at: None,
            refresh_at: Some(NOW),
        };
        assert_eq!(refresh_in(NOW, forever, 0.5), None);
        assert_eq!(
            refresh_in(NOW, expiring_in(-1.0), 0.5),
            Some(Duration::ZERO)
        );
        // Far-future expiries do not overflow.
        assert!(refresh_in(NOW, expiring_in(1e300), 0.5).is_some());
    }

    #[test]
    fn connections_are_staggered_within_a_tenth_of_the_lifetime_and_10_seconds() {
        assert_eq!(stagger(NOW, None, None, 0.9), Duration::ZERO);
        let short = stagger(NOW, Some(NOW + 5_000.0), None, 0.999);
        assert!(short < Duration::from_millis(500) && short > Duration::from_millis(490));
        let long = stagger(NOW, Some(NOW + 60.0 * MINUTE), None, 0.999);
        assert!(long <= Duration::from_secs(10) && long > Duration::from_millis(9_900));
        assert_eq!(stagger(NOW, Some(NOW - 1.0), None, 0.5), Duration::ZERO);
        assert!(unit(u64::MAX) < 1.0 && unit(0) == 0.0);
    }

    #[test]
    fn the_stagger_leaves_at_least_half_of_the_old_credentials_life() {
        // New credentials for an hour; the old ones expire in 4 s: wait at most 2 s.
        let new = Some(NOW + 60.0 * MINUTE);
        let capped = stagger(NOW, new, Some(NOW + 4_000.0), 0.999);
        assert!(capped <= Duration::from_secs(2), "{capped:?}");
        assert!(capped > Duration::from_millis(1_990), "{capped:?}");
        // Already expired: at once.
        assert_eq!(stagger(NOW, new, Some(NOW - 1.0), 0.999), Duration::ZERO);
        // A long-lived old set does not shorten the usual stagger.
        let usual = stagger(NOW, new, Some(NOW + 30.0 * MINUTE), 0.999);
        assert!(usual > Duration::from_millis(9_900), "{usual:?}");
    }
}
