//! Keeping credentials fresh: the refresh loop and its schedule.
//!
//! The loop runs the whole flow ([`Refresh`]: for Vault, a login re-reading the ServiceAccount
//! token, a new key and certificate, CreateSession; for files, the files re-read) at the time
//! [`next_refresh`] picks. A failure is retried with capped exponential backoff and full jitter
//! (1 s doubling to 60 s) while the current credentials keep being served, never past their
//! expiry ([`super::State::valid`]). Between two refreshes the loop waits through
//! [`Refresh::pause`], which may end early: the file source does when its certificate files are
//! rotated, if the certificate in use expires before the credentials it minted (`watch`) or
//! after a failure.
//!
//! The schedule is a pure function of the credentials' issue and expiry times, the clock and a
//! random draw, so it is tested without sleeping. The rule:
//! - refresh at 70 % of the lifetime, ± 5 % jitter (a fleet started together spreads out);
//! - but no later than `expiry − margin`, with `margin = min(15 min, max(5 min, lifetime / 2))`
//!   (less a jitter of up to 5 % of the lifetime): new credentials are there **at least 15
//!   minutes before expiry when the lifetime is 30 minutes or more**, and never less than
//!   5 minutes before (7.5 minutes for AWS's shortest, 900 s sessions). SDKs start refreshing
//!   15 minutes (botocore's advisory window, the ECS and IMDS providers of the JS and Rust SDKs:
//!   5 minutes) before expiry and must then find new credentials, not the old ones again.
//! - Lifetimes below 10 minutes never come from AWS (test fakes only): there the margin is a
//!   quarter of the lifetime.
//! - Never sooner than [`MIN_WAIT`] from now.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use time::OffsetDateTime;

use super::{Current, State};
use crate::credentials::Credentials;
use crate::retry::{full_jitter, random_unit};
use crate::timefmt::{self, Style};

/// The shortest wait between refreshes.
pub(crate) const MIN_WAIT: Duration = Duration::from_secs(5);
/// Backoff between failed refreshes: full jitter, from 1 s doubling up to 60 s.
pub(crate) const RETRY_BASE: Duration = Duration::from_secs(1);
pub(crate) const RETRY_CAP: Duration = Duration::from_secs(60);

/// What one refresh produced.
#[derive(Debug)]
pub(crate) struct Fresh {
    pub(crate) credentials: Credentials,
    /// The certificate's notAfter (for `/metrics`).
    pub(crate) cert_not_after: OffsetDateTime,
}

/// One run of the flow that yields fresh credentials, or the one-line reason it failed.
pub(crate) trait Refresh: Send + Sync + 'static {
    fn refresh(&self) -> impl Future<Output = Result<Fresh, String>> + Send;

    /// Waits `wait` before the next refresh; with `watch`, may return as soon as the
    /// identity's inputs change (rotated certificate files).
    fn pause(&self, wait: Duration, watch: bool) -> impl Future<Output = ()> + Send {
        let _ = watch;
        tokio::time::sleep(wait)
    }
}

/// Refreshes forever (the caller aborts the task at shutdown).
pub(crate) async fn run(source: impl Refresh, state: Arc<State>) {
    // Consecutive failed refreshes, for the backoff between retries.
    let mut failures: u32 = 0;
    loop {
        let started = OffsetDateTime::now_utc();
        let (wait, watch) = match source.refresh().await {
            Ok(fresh) => {
                let expires = fresh.credentials.expiration;
                // The certificate dies before its credentials: its rotation must not wait.
                let watch = fresh.cert_not_after < expires;
                state.set(Current {
                    creds: fresh.credentials,
                    cert_not_after: fresh.cert_not_after,
                    updated: started,
                });
                state.metrics.refreshes.fetch_add(1, Relaxed);
                failures = 0;
                let wait = next_refresh(started, expires, OffsetDateTime::now_utc(), random_unit());
                tracing::info!(expiration = %timefmt::format(expires, Style::Rfc3339), next_refresh_s = wait.as_secs(), "credentials refreshed");
                (wait, watch)
            }
            Err(e) => {
                state.metrics.failures.fetch_add(1, Relaxed);
                let still_valid = state.valid().map(|c| c.creds.expiration_rfc3339());
                tracing::warn!(error = %e, serving_until = still_valid.as_deref().unwrap_or("nothing valid"), "refresh failed, will retry");
                failures = failures.saturating_add(1);
                (
                    full_jitter(RETRY_BASE, RETRY_CAP, failures - 1, random_unit()),
                    true,
                )
            }
        };
        source.pause(wait, watch).await;
    }
}

/// How long before expiry new credentials must be in place, for a lifetime.
fn margin(lifetime: time::Duration) -> time::Duration {
    if lifetime < time::Duration::minutes(10) {
        return lifetime / 4i32;
    }
    (lifetime / 2i32)
        .max(time::Duration::minutes(5))
        .min(time::Duration::minutes(15))
}

/// The delay from `now` until the next refresh; `r` is a uniform draw in [0, 1).
pub(crate) fn next_refresh(
    issued: OffsetDateTime,
    expires: OffsetDateTime,
    now: OffsetDateTime,
    r: f64,
) -> Duration {
    let r = r.clamp(0.0, 1.0);
    let lifetime = (expires - issued).max(time::Duration::ZERO);
    let target = issued + lifetime * 0.7_f64 + lifetime * (0.1 * (r - 0.5));
    let latest = expires - margin(lifetime) - lifetime * (0.05 * r);
    let wait = target.min(latest) - now;
    Duration::try_from(wait)
        .unwrap_or(Duration::ZERO)
        .max(MIN_WAIT)
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    const T0: OffsetDateTime = datetime!(2025-01-01 00:00:00 UTC);

    fn at(lifetime_s: i64, r: f64) -> (Duration, time::Duration) {
        let exp = T0 + time::Duration::seconds(lifetime_s);
        let wait = next_refresh(T0, exp, T0, r);
        let before_expiry = exp - (T0 + wait);
        (wait, before_expiry)
    }

    #[test]
    fn every_aws_duration_keeps_the_sdk_margins() {
        for lifetime in 900..=43_200i64 {
            for r in [0.0, 0.25, 0.5, 0.75, 0.999_999] {
                let (wait, before) = at(lifetime, r);
                assert!(
                    before >= time::Duration::minutes(5),
                    "{lifetime} s, r={r}: refresh only {before} before expiry"
                );
                if lifetime >= 1800 {
                    assert!(
                        before >= time::Duration::minutes(15),
                        "{lifetime} s, r={r}: refresh only {before} before expiry"
                    );
                }
                // Not absurdly early either: at least 40 % of the lifetime is used.
                assert!(
                    wait.as_secs_f64() >= 0.4 * lifetime as f64,
                    "{lifetime} s, r={r}: refresh after only {wait:?}"
                );
            }
        }
    }

    #[test]
    fn one_hour_refreshes_at_70_percent_within_jitter() {
        assert_eq!(at(3600, 0.5).0, Duration::from_secs(42 * 60));
        assert_eq!(at(3600, 0.0).0, Duration::from_secs(42 * 60 - 180));
        assert!(at(3600, 0.999_999).0 <= Duration::from_secs(45 * 60));
    }

    #[test]
    fn twelve_hours_refresh_at_70_percent() {
        assert_eq!(
            at(12 * 3600, 0.5).0,
            Duration::from_secs(12 * 3600 * 7 / 10)
        );
    }

    #[test]
    fn short_sessions_refresh_early_enough() {
        // 900 s: half the lifetime, less up to 5 % jitter.
        assert_eq!(at(900, 0.0).0, Duration::from_secs(450));
        assert!(at(900, 0.999_999).0 >= Duration::from_secs(405));
        // 20 minutes: 10 minutes before expiry.
        assert_eq!(at(1200, 0.0).0, Duration::from_secs(600));
    }

    #[test]
    fn test_lifetimes_and_late_starts_are_clamped() {
        // 60 s (a test fake): 70 %, within the quarter-lifetime margin.
        assert_eq!(at(60, 0.5).0, Duration::from_secs(42));
        assert!(at(60, 0.999_999).0 <= Duration::from_secs(45));
        // Already past the refresh point: wait only the minimum.
        let exp = T0 + time::Duration::seconds(60);
        assert_eq!(
            next_refresh(T0, exp, T0 + time::Duration::seconds(59), 0.5),
            MIN_WAIT
        );
        assert_eq!(next_refresh(T0, T0, T0, 0.5), MIN_WAIT);
    }
}
