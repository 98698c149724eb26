//! When to refresh: a pure function of the credentials' issue and expiry times, the clock and
//! a random draw, so it is tested without sleeping.
//!
//! Refresh at 70 % of the lifetime, ± 5 % jitter (so a fleet started together does not refresh
//! together), but no later than `expiry − min(15 min, lifetime / 4)`: SDKs fetch new
//! credentials from the endpoint 5–15 minutes before expiry and must find fresh ones. Never
//! sooner than [`MIN_WAIT`] from now.

use std::time::Duration;

use time::OffsetDateTime;

/// The shortest wait between refreshes.
pub const MIN_WAIT: Duration = Duration::from_secs(5);

/// The delay from `now` until the next refresh; `r` is a uniform draw in [0, 1).
pub fn next_refresh(
    issued: OffsetDateTime,
    expires: OffsetDateTime,
    now: OffsetDateTime,
    r: f64,
) -> Duration {
    let lifetime = (expires - issued).max(time::Duration::ZERO);
    let jitter: time::Duration = lifetime * (0.1 * (r.clamp(0.0, 1.0) - 0.5));
    let target: OffsetDateTime = issued + lifetime * 0.7_f64 + jitter;
    let margin = (lifetime / 4i32).min(time::Duration::minutes(15));
    let at = target.min(expires - margin);
    let wait = at - now;
    let wait = Duration::try_from(wait).unwrap_or(Duration::ZERO);
    wait.max(MIN_WAIT)
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    const T0: OffsetDateTime = datetime!(2025-01-01 00:00:00 UTC);

    #[test]
    fn one_hour_refreshes_at_70_percent_within_jitter() {
        let exp = T0 + time::Duration::hours(1);
        assert_eq!(next_refresh(T0, exp, T0, 0.5), Duration::from_secs(42 * 60));
        assert_eq!(
            next_refresh(T0, exp, T0, 0.0),
            Duration::from_secs(42 * 60 - 180)
        );
        // The upper jitter is clamped by the 15-minute margin (45 min).
        assert_eq!(
            next_refresh(T0, exp, T0, 0.999_999),
            Duration::from_secs(45 * 60 - 1).max(next_refresh(T0, exp, T0, 0.999_999))
        );
        assert!(next_refresh(T0, exp, T0, 0.999_999) <= Duration::from_secs(45 * 60));
    }

    #[test]
    fn twelve_hours_keep_a_15_minute_margin() {
        let exp = T0 + time::Duration::hours(12);
        let d = next_refresh(T0, exp, T0, 0.5);
        assert_eq!(d, Duration::from_secs((12 * 3600) * 7 / 10));
        assert!(d <= Duration::from_secs(12 * 3600 - 15 * 60));
    }

    #[test]
    fn short_lifetimes_and_late_starts_are_clamped() {
        let exp = T0 + time::Duration::seconds(60);
        let d = next_refresh(T0, exp, T0, 0.5);
        assert_eq!(d, Duration::from_secs(42));
        assert!(d <= Duration::from_secs(45));
        // Already past the refresh point: wait only the minimum.
        assert_eq!(
            next_refresh(T0, exp, T0 + time::Duration::seconds(59), 0.5),
            MIN_WAIT
        );
        assert_eq!(next_refresh(T0, T0, T0, 0.5), MIN_WAIT);
    }
}
