//! The one retry loop, shared by the Vault and Roles Anywhere clients: send → classify → back
//! off → give up. A client supplies only the attempt and its classification ([`Outcome`]).
//!
//! Contract:
//! - every attempt (connect, request, body) is bounded by what is left of the run's deadline
//!   (`--timeout`); a client's own per-request timeout still applies, so the effective bound is
//!   the smaller of the two;
//! - the delay before retry `n` (0-based) is uniform(0, min(cap, base × 2ⁿ)) ("full jitter", so
//!   a fleet started together spreads out), raised to any `Retry-After` the server sent;
//! - no retry starts if its delay would reach the deadline, nor after `max_attempts`.

use std::future::Future;
use std::time::{Duration, Instant};

/// What one attempt came to.
#[derive(Debug)]
pub(crate) enum Outcome<T, E> {
    Done(T),
    /// A failure that retrying cannot fix.
    Fatal(E),
    /// A failure worth another attempt, why (for logs and the final error), and the server's
    /// `Retry-After`, if any.
    Retry {
        why: String,
        after: Option<Duration>,
    },
}

/// How a client backs off.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Policy {
    pub(crate) base: Duration,
    pub(crate) cap: Duration,
    /// Give up after this many attempts even before the deadline.
    pub(crate) max_attempts: Option<u32>,
}

/// Why the loop stopped without a result.
#[derive(Debug)]
pub(crate) enum Failure<E> {
    /// The attempt's own fatal error.
    Fatal(E),
    /// Retryable failures until the deadline or the attempt limit.
    GaveUp { attempts: u32, last: String },
}

/// Runs `attempt` until it is done, fatal, or out of time or attempts. `what` names the call in
/// the retry log line (`"<what> failed, will retry"`), `op` adds detail to it.
pub(crate) async fn run<T, E, F, Fut>(
    what: &str,
    op: &str,
    policy: Policy,
    deadline: Instant,
    mut attempt: F,
) -> Result<T, Failure<E>>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Outcome<T, E>>,
{
    let mut made: u32 = 0;
    loop {
        made += 1;
        let left = deadline.saturating_duration_since(Instant::now());
        let (why, after) = match tokio::time::timeout(left, attempt()).await {
            Err(_) => {
                return Err(Failure::GaveUp {
                    attempts: made,
                    last: "timed out: the --timeout deadline passed during the request".into(),
                });
            }
            Ok(Outcome::Done(t)) => return Ok(t),
            Ok(Outcome::Fatal(e)) => return Err(Failure::Fatal(e)),
            Ok(Outcome::Retry { why, after }) => (why, after),
        };
        let delay = full_jitter(policy.base, policy.cap, made - 1, random_unit())
            .max(after.unwrap_or_default());
        let out_of_attempts = policy.max_attempts.is_some_and(|m| made >= m);
        if out_of_attempts || Instant::now() + delay >= deadline {
            return Err(Failure::GaveUp {
                attempts: made,
                last: why,
            });
        }
        tracing::warn!(
            op,
            attempt = made,
            retry_in_ms = delay.as_millis() as u64,
            error = %why,
            "{what} failed, will retry"
        );
        tokio::time::sleep(delay).await;
    }
}

/// The pure schedule: the delay before retry `attempt` for a uniform draw `r` in [0, 1).
pub(crate) fn full_jitter(base: Duration, cap: Duration, attempt: u32, r: f64) -> Duration {
    let exp = base.saturating_mul(1u32 << attempt.min(20)).min(cap);
    exp.mul_f64(r.clamp(0.0, 1.0))
}

/// A uniform draw in [0, 1) from the system RNG.
pub(crate) fn random_unit() -> f64 {
    use ring::rand::SecureRandom;
    let mut b = [0u8; 8];
    ring::rand::SystemRandom::new()
        .fill(&mut b)
        .expect("system RNG");
    (u64::from_le_bytes(b) >> 11) as f64 / (1u64 << 53) as f64
}

/// Parses `Retry-After` in seconds (the HTTP-date form is not used by Vault or AWS here).
pub(crate) fn parse_retry_after(v: Option<&http::HeaderValue>) -> Option<Duration> {
    v?.to_str()
        .ok()?
        .trim()
        .parse::<u64>()
        .ok()
        .map(Duration::from_secs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jitter_is_capped_and_exponential() {
        let (b, c) = (Duration::from_millis(100), Duration::from_secs(2));
        assert_eq!(
            full_jitter(b, c, 0, 0.999_999),
            Duration::from_millis(100).mul_f64(0.999_999)
        );
        assert_eq!(full_jitter(b, c, 3, 0.5), Duration::from_millis(400));
        assert_eq!(full_jitter(b, c, 10, 0.5), Duration::from_secs(1));
        assert_eq!(full_jitter(b, c, 63, 1.0), c);
        assert_eq!(full_jitter(b, c, 5, 0.0), Duration::ZERO);
        assert!((0.0..1.0).contains(&random_unit()));
    }

    const FAST: Policy = Policy {
        base: Duration::from_millis(1),
        cap: Duration::from_millis(2),
        max_attempts: None,
    };

    fn retry<T>(after: Option<Duration>) -> Outcome<T, ()> {
        Outcome::Retry {
            why: "busy".into(),
            after,
        }
    }

    #[tokio::test]
    async fn counts_the_attempts_it_made() {
        let mut n = 0;
        let r: Result<(), _> = run(
            "t",
            "",
            Policy {
                max_attempts: Some(3),
                ..FAST
            },
            Instant::now() + Duration::from_secs(5),
            || {
                n += 1;
                async { retry(None) }
            },
        )
        .await;
        assert!(matches!(r, Err(Failure::GaveUp { attempts: 3, .. })));
        assert_eq!(n, 3);
        let mut n = 0;
        let r = run(
            "t",
            "",
            FAST,
            Instant::now() + Duration::from_secs(5),
            || {
                n += 1;
                let last = n == 2;
                async move { if last { Outcome::Done(7) } else { retry(None) } }
            },
        )
        .await;
        assert_eq!(r.unwrap(), 7);
        let r: Result<(), _> = run(
            "t",
            "",
            FAST,
            Instant::now() + Duration::from_secs(5),
            || async { Outcome::Fatal("no") },
        )
        .await;
        assert!(matches!(r, Err(Failure::Fatal("no"))));
    }

    #[tokio::test]
    async fn the_deadline_bounds_attempts_and_retry_after_is_a_floor() {
        // A Retry-After past the deadline ends the loop at once.
        let t = Instant::now();
        let r: Result<(), _> = run("t", "", FAST, t + Duration::from_secs(5), || async {
            retry(Some(Duration::from_secs(10)))
        })
        .await;
        assert!(matches!(r, Err(Failure::GaveUp { attempts: 1, .. })));
        assert!(t.elapsed() < Duration::from_secs(1));
        // An attempt that never answers is cut at the deadline.
        let r: Result<(), Failure<()>> = run("t", "", FAST, t + Duration::from_millis(200), || {
            std::future::pending()
        })
        .await;
        match r {
            Err(Failure::GaveUp { attempts: 1, last }) => assert!(last.contains("deadline")),
            other => panic!("{other:?}"),
        }
        assert!(t.elapsed() < Duration::from_secs(2));
    }
}
