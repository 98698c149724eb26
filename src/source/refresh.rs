//! The one refresh loop of the long-running commands (`serve`, `update`): it fetches from the
//! source, hands the credentials to a [`Sink`], and does it again when [`next_refresh`] says,
//! or sooner when the source's inputs change.
//!
//! - Each round runs the whole flow ([`Feed::fetch`]: for Vault, a login re-reading the
//!   ServiceAccount token, a new key and certificate, CreateSession; for files, the files
//!   re-read) within `--timeout`, then [`Sink::deliver`]s the credentials within the same
//!   deadline: `serve`'s endpoints (`crate::serve`), the credentials file
//!   ([`crate::aws::credentials_file::FileSink`]).
//! - A failed round (the flow, or a sink that could not take the credentials) is retried with
//!   capped exponential backoff and full jitter ([`RETRY_BASE`] doubling to [`RETRY_CAP`]); what
//!   the sink already holds stays (the endpoints never serve it past its expiry:
//!   `serve::State::valid`). [`Sink::failed`] is told.
//! - Between two rounds the loop waits for the schedule or for [`Feed::changed`], whichever
//!   comes first. It watches for a change when the certificate in use expires before the
//!   credentials it minted, and after a failure; a change then ends the wait at once. The file
//!   source resolves `changed` when its files' digest changes (rotation:
//!   [`crate::source::files`]); the SPIFFE source, told of new material by a stream, resolves
//!   it when the stream delivers another SVID or withdraws it, and is always watched
//!   ([`Mark::pushed`]). The mark is taken before each fetch, so a rotation during a refresh
//!   still ends the next wait.
//! - A failure that withdrew the identity ([`SourceError::withdrawn`]) tells the sink
//!   ([`Sink::withdrawn`]): `serve` stops serving what it holds.
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

use std::fmt;
use std::future::Future;
use std::time::{Duration, Instant};

use time::OffsetDateTime;

use super::{Mark, Obtained, Source, SourceError};
use crate::error::one_line;
use crate::retry::{full_jitter, random_unit};
use crate::rolesanywhere::session::SessionClient;
use crate::timefmt::{self, Style};

/// The shortest wait between refreshes.
pub(crate) const MIN_WAIT: Duration = Duration::from_secs(5);
/// Backoff between failed refreshes: full jitter, from 1 s doubling up to 60 s.
pub(crate) const RETRY_BASE: Duration = Duration::from_secs(1);
pub(crate) const RETRY_CAP: Duration = Duration::from_secs(60);

/// Where fresh credentials come from: a [`Source`] with its client ([`Upstream`]), or a test's
/// stand-in.
pub(crate) trait Feed: Send + Sync {
    /// The inputs as they are now.
    fn mark(&self) -> Mark;
    /// One run of the flow, finished before `deadline` (for a source: its `obtain`).
    fn fetch(
        &self,
        deadline: Instant,
    ) -> impl Future<Output = Result<Obtained, SourceError>> + Send;
    /// Resolves once the inputs no longer match `since`.
    fn changed(&self, since: Mark) -> impl Future<Output = ()> + Send;
}

/// A source and the Roles Anywhere client it obtains through.
#[derive(Debug)]
pub(crate) struct Upstream {
    pub(crate) source: Source,
    pub(crate) client: SessionClient,
}

impl Feed for Upstream {
    fn mark(&self) -> Mark {
        self.source.mark()
    }

    fn fetch(
        &self,
        deadline: Instant,
    ) -> impl Future<Output = Result<Obtained, SourceError>> + Send {
        self.source.obtain(&self.client, deadline)
    }

    fn changed(&self, since: Mark) -> impl Future<Output = ()> + Send {
        self.source.changed(since)
    }
}

/// What the loop hands fresh credentials to.
pub(crate) trait Sink: Send + Sync {
    /// Why it could not take them.
    type Error: fmt::Display;
    /// The log message of a round that reached it.
    const DELIVERED: &'static str;
    /// Takes credentials whose flow started at `issued`, before `deadline`; an error fails the
    /// round (retried with backoff).
    fn deliver(
        &self,
        got: &Obtained,
        issued: OffsetDateTime,
        deadline: Instant,
    ) -> Result<(), Self::Error>;
    /// A round failed.
    fn failed(&self) {}
    /// The source took the identity away (a SPIFFE SVID its agent withdrew): credentials
    /// made from it must no longer be handed out.
    fn withdrawn(&self) {}
}

/// The loop: a feed, and `--timeout` for each round.
#[derive(Debug)]
pub(crate) struct Refresh<F> {
    pub(crate) feed: F,
    pub(crate) timeout: Duration,
}

impl<F: Feed> Refresh<F> {
    /// One round for `update --once`: fetch and deliver within `--timeout`; the errors as they
    /// are, for the exit code.
    pub(crate) async fn once<S: Sink>(&self, sink: &S) -> Result<(), Once<S::Error>> {
        let deadline = Instant::now() + self.timeout;
        let issued = OffsetDateTime::now_utc();
        let got = self.feed.fetch(deadline).await.map_err(Once::Source)?;
        sink.deliver(&got, issued, deadline).map_err(Once::Sink)
    }

    /// Refreshes into `sink` forever (the caller drops the future to stop).
    pub(crate) async fn run(&self, sink: &impl Sink) {
        // Consecutive failed rounds, for the backoff.
        let mut failures: u32 = 0;
        // The expiry of the last credentials delivered, for the failure log.
        let mut delivered: Option<OffsetDateTime> = None;
        loop {
            let (wait, watch, mark) = self.round(sink, &mut failures, &mut delivered).await;
            if watch {
                tokio::select! {
                    () = tokio::time::sleep(wait) => {}
                    () = self.feed.changed(mark) => {}
                }
            } else {
                tokio::time::sleep(wait).await;
            }
        }
    }

    /// One round: how long to wait, whether to watch for a change meanwhile, and the mark.
    async fn round<S: Sink>(
        &self,
        sink: &S,
        failures: &mut u32,
        delivered: &mut Option<OffsetDateTime>,
    ) -> (Duration, bool, Mark) {
        let started = OffsetDateTime::now_utc();
        let mark = self.feed.mark();
        let deadline = Instant::now() + self.timeout;
        let result = match self.feed.fetch(deadline).await {
            Ok(got) => sink
                .deliver(&got, started, deadline)
                .map(|()| got)
                .map_err(|e| one_line(&e)),
            Err(e) => {
                if e.withdrawn() {
                    tracing::warn!(error = %e, "the identity was withdrawn: its credentials are no longer handed out");
                    sink.withdrawn();
                }
                Err(one_line(&e))
            }
        };
        match result {
            Ok(got) => {
                *failures = 0;
                let expires = got.credentials.expiration;
                *delivered = Some(expires);
                let wait = next_refresh(started, expires, OffsetDateTime::now_utc(), random_unit());
                tracing::info!(expiration = %timefmt::format(expires, Style::Rfc3339), next_refresh_s = wait.as_secs(), "{}", S::DELIVERED);
                // The certificate dies before its credentials: its rotation must not wait; a
                // source that pushes its rotations is always heard.
                (wait, got.cert_not_after < expires || mark.pushed(), mark)
            }
            Err(e) => {
                sink.failed();
                let valid_until = delivered
                    .filter(|t| *t > OffsetDateTime::now_utc())
                    .map(|t| timefmt::format(t, Style::Rfc3339));
                tracing::warn!(error = %e, valid_until = valid_until.as_deref().unwrap_or("nothing valid"), "refresh failed, will retry");
                *failures = failures.saturating_add(1);
                let wait = full_jitter(RETRY_BASE, RETRY_CAP, *failures - 1, random_unit());
                (wait, true, mark)
            }
        }
    }
}

/// Why `update --once` failed.
#[derive(Debug)]
pub(crate) enum Once<E> {
    Source(SourceError),
    Sink(E),
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

    /// A feed that plays a script: `Some((lifetime, cert_lifetime, refuse))` yields
    /// credentials living that long (seconds), which the sink refuses when `refuse` is set;
    /// `None` (and the end of the script) fails. `changed` resolves when the test says so.
    struct Script {
        steps: std::sync::Mutex<std::collections::VecDeque<Option<(i64, i64, bool)>>>,
        change: tokio::sync::Notify,
        deadlines: std::sync::Mutex<Vec<Instant>>,
    }

    impl Feed for Script {
        fn mark(&self) -> Mark {
            Mark::Unwatched
        }
        async fn fetch(&self, deadline: Instant) -> Result<Obtained, SourceError> {
            self.deadlines.lock().unwrap().push(deadline);
            let step = self.steps.lock().unwrap().pop_front();
            let now = OffsetDateTime::now_utc();
            match step {
                Some(Some((life, cert, refuse))) => Ok(Obtained {
                    credentials: crate::credentials::fixture(now + time::Duration::seconds(life)),
                    // The script's word to the sink.
                    assumed_role_arn: refuse.then(|| "refuse".to_string()),
                    cert_not_after: now + time::Duration::seconds(cert),
                }),
                _ => Err(SourceError::Keygen("scripted failure".into())),
            }
        }
        async fn changed(&self, _since: Mark) {
            self.change.notified().await
        }
    }

    fn script(steps: &[Option<(i64, i64, bool)>]) -> Script {
        Script {
            steps: std::sync::Mutex::new(steps.iter().copied().collect()),
            change: tokio::sync::Notify::new(),
            deadlines: Default::default(),
        }
    }

    #[derive(Debug, PartialEq)]
    enum Event {
        Delivered(OffsetDateTime),
        Failed,
    }

    /// Records what it gets, refusing what the script marked.
    struct Recorder(tokio::sync::mpsc::UnboundedSender<Event>);

    impl Sink for Recorder {
        type Error = &'static str;
        const DELIVERED: &'static str = "recorded";
        fn deliver(
            &self,
            got: &Obtained,
            issued: OffsetDateTime,
            deadline: Instant,
        ) -> Result<(), &'static str> {
            assert!(issued <= OffsetDateTime::now_utc());
            assert!(deadline > Instant::now());
            if got.assumed_role_arn.is_some() {
                return Err("disk full");
            }
            let _ = self.0.send(Event::Delivered(got.credentials.expiration));
            Ok(())
        }
        fn failed(&self) {
            let _ = self.0.send(Event::Failed);
        }
    }

    const HOUR: i64 = 3600;

    fn delivered(e: Option<Event>) {
        match e {
            Some(Event::Delivered(exp)) => {
                let left = exp - OffsetDateTime::now_utc();
                assert!(left > time::Duration::seconds(HOUR - 60), "{left}");
            }
            other => panic!("expected a delivery, got {other:?}"),
        }
    }

    #[tokio::test(flavor = "current_thread")]
    async fn the_loop_hands_each_refresh_to_the_sink_and_retries_failures() {
        let refresh = Refresh {
            feed: script(&[
                Some((HOUR, 60, false)),       // the certificate dies first: watched
                None,                          // the flow fails
                Some((HOUR, 60, true)),        // the sink refuses it
                Some((HOUR, 60, false)),       // delivered
                Some((HOUR, 2 * HOUR, false)), // the certificate outlives it: not watched
            ]),
            timeout: Duration::from_secs(7),
        };
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let sink = Recorder(tx);
        let change = || refresh.feed.change.notify_one();
        let driver = async {
            delivered(rx.recv().await);
            // A change ends the scheduled wait (42 minutes away) at once.
            change();
            assert_eq!(rx.recv().await, Some(Event::Failed));
            // After a failure the wait (the backoff, under 1 s here) is watched too.
            change();
            assert_eq!(
                rx.recv().await,
                Some(Event::Failed),
                "a refusing sink fails the round"
            );
            change();
            delivered(rx.recv().await);
            change();
            delivered(rx.recv().await);
            // The certificate outlives the credentials: a change does not end the wait.
            change();
            let more = tokio::time::timeout(Duration::from_millis(500), rx.recv()).await;
            assert!(
                more.is_err(),
                "refreshed on a change it was not watching for: {more:?}"
            );
        };
        tokio::select! {
            () = refresh.run(&sink) => unreachable!("the loop never ends"),
            () = driver => {}
        }
        // Each round had its own --timeout.
        let deadlines = refresh.feed.deadlines.lock().unwrap();
        assert_eq!(deadlines.len(), 5);
        assert!(deadlines.windows(2).all(|w| w[0] <= w[1]));
    }

    #[tokio::test(flavor = "current_thread")]
    async fn once_reports_the_source_or_the_sink() {
        let r = Refresh {
            feed: script(&[Some((HOUR, HOUR, false)), Some((HOUR, HOUR, true))]),
            timeout: Duration::from_secs(3),
        };
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let sink = Recorder(tx);
        assert!(r.once(&sink).await.is_ok());
        delivered(rx.recv().await);
        assert!(matches!(r.once(&sink).await, Err(Once::Sink("disk full"))));
        assert!(matches!(r.once(&sink).await, Err(Once::Source(_))));
        assert!(rx.try_recv().is_err(), "once never calls failed()");
    }
}
