//! Option values as the JavaScript caller gives them, checked and given their defaults.

use std::time::Duration;

use crate::conn::Backoff;
use crate::error::{StoreError, StoreResult};

/// A whole number option within `min..=max`, or `default` when absent.
pub fn whole_number(
    name: &str,
    value: Option<f64>,
    default: u64,
    min: u64,
    max: u64,
) -> StoreResult<u64> {
    let Some(value) = value else {
        return Ok(default);
    };
    let whole = value.fract() == 0.0 && value >= min as f64 && value <= max as f64;
    if !whole {
        return Err(StoreError::invalid_config(format!(
            "{name}: expected a whole number from {min} to {max}, got {value}"
        )));
    }
    Ok(value as u64)
}

pub fn milliseconds(
    name: &str,
    value: Option<f64>,
    default: u64,
    min: u64,
) -> StoreResult<Duration> {
    whole_number(name, value, default, min, 86_400_000).map(Duration::from_millis)
}

pub fn backoff(base_delay_ms: Option<f64>, max_delay_ms: Option<f64>) -> StoreResult<Backoff> {
    let base = milliseconds("retry.baseDelayMs", base_delay_ms, 100, 1)?;
    let max = milliseconds("retry.maxDelayMs", max_delay_ms, 5000, 1)?;
    if max < base {
        return Err(StoreError::invalid_config(
            "retry.maxDelayMs: must not be less than retry.baseDelayMs",
        ));
    }
    Ok(Backoff { base, max })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn absent_values_take_the_default_and_bad_ones_name_the_option() {
        assert_eq!(whole_number("listLimit", None, 50, 1, 100).unwrap(), 50);
        assert_eq!(whole_number("listLimit", Some(7.0), 50, 1, 100).unwrap(), 7);
        for bad in [0.0, 1.5, -3.0, 101.0, f64::NAN, f64::INFINITY] {
            let err = whole_number("listLimit", Some(bad), 50, 1, 100).unwrap_err();
            assert!(err.message.starts_with("listLimit: "), "{}", err.message);
        }
        assert!(backoff(Some(500.0), Some(100.0)).is_err());
        assert_eq!(
            backoff(None, None).unwrap().max,
            Duration::from_millis(5000)
        );
    }
}
