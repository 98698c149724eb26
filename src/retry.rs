//! The one retry loop, shared by the Vault and Roles Anywhere clients: send → classify → back
//! off → give up. A client supplies only the attempt and its classification ([`Outcome`]).
//!
//! Contract:
//! - every attempt (connect, request, body) is bounded by what is left of the run's deadline
//!   (`--timeout`); a client's own per-request timeout still applies, so the effective bound is
//!   the smaller of the two;
//! - the delay before retry `n` (0-based) is uniform(0, min(cap, base × 2ⁿ)) ("full jitter", so
//!   a fleet started together spreads out), raised to any `Retry-After` the server sent;
//! - the cap fits the fault: a busy server ([`Outcome::Retry`]: quotas, `Retry-After`, overload)
//!   gets the long [`Policy::cap`]; a service between nodes ([`Outcome::Failover`]: a leader
//!   election, a load balancer with no node behind it, connection refused) gets the short
//!   [`Policy::failover_cap`], so a fleet finishes within about that long of the service coming
//!   back instead of sleeping through it;
//! - a delay that would reach the deadline becomes a last try halfway to it (down to 200 ms
//!   left), so a run keeps trying until close to its deadline; no retry starts after
//!   `max_attempts`, nor when the server's `Retry-After` reaches past the deadline.

use std::future::Future;
use std::time::{Duration, Instant};

/// What one attempt came to.
#[derive(Debug)]
pub(crate) enum Outcome<T, E> {
    Done(T),
    /// A failure that retrying cannot fix.
    Fatal(E),
    /// A failure worth another attempt because the server is busy (quota, overload): why (for
    /// logs and the final error), and the server's `Retry-After`, if any. Long cap.
    Retry {
        why: String,
        after: Option<Duration>,
    },
    /// A failure worth another attempt soon because the service is between nodes (failover,
    /// nothing listening yet): why. Short cap.
    Failover {
        why: String,
    },
}

/// How a client backs off.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Policy {
    pub(crate) base: Duration,
    /// The cap for [`Outcome::Retry`] (a busy server).
    pub(crate) cap: Duration,
    /// The cap for [`Outcome::Failover`] (a service between nodes).
    pub(crate) failover_cap: Duration,
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
    attempt: F,
) -> Result<T, Failure<E>>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Outcome<T, E>>,
{
    run_with(what, op, policy, deadline, attempt, random_unit).await
}

/// [`run`] with the uniform draw for the jitter given (tests make it deterministic).
async fn run_with<T, E, F, Fut>(
    what: &str,
    op: &str,
    policy: Policy,
    deadline: Instant,
    mut attempt: F,
    mut draw: impl FnMut() -> f64,
) -> Result<T, Failure<E>>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Outcome<T, E>>,
{
    let mut made: u32 = 0;
    loop {
        made += 1;
        let left = deadline.saturating_duration_since(Instant::now());
        let (why, after, cap) = match tokio::time::timeout(left, attempt()).await {
            Err(_) => {
                return Err(Failure::GaveUp {
                    attempts: made,
                    last: "timed out: the --timeout deadline passed during the request".into(),
                });
            }
            Ok(Outcome::Done(t)) => return Ok(t),
            Ok(Outcome::Fatal(e)) => return Err(Failure::Fatal(e)),
            Ok(Outcome::Retry { why, after }) => (why, after, policy.cap),
            Ok(Outcome::Failover { why }) => (why, None, policy.failover_cap),
        };
        let left = deadline.saturating_duration_since(Instant::now());
        let delay = next_delay(full_jitter(policy.base, cap, made - 1, draw()), after, left);
        let out_of_attempts = policy.max_attempts.is_some_and(|m| made >= m);
        let Some(delay) = delay.filter(|_| !out_of_attempts) else {
            return Err(Failure::GaveUp {
                attempts: made,
                last: why,
            });
        };
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

/// The least time left worth one more attempt when the drawn delay would reach the deadline.
const LAST_TRY_MIN: Duration = Duration::from_millis(200);

/// The delay before the next attempt, given the drawn `jitter`, the server's `Retry-After` and
/// the time `left` before the deadline; `None` = give up. A draw that would reach the deadline
/// is shortened to half the time left (so a run keeps trying until close to its `--timeout`
/// instead of stopping early on an unlucky draw), unless the server asked to wait that long or
/// too little time is left.
fn next_delay(jitter: Duration, after: Option<Duration>, left: Duration) -> Option<Duration> {
    let after = after.unwrap_or_default();
    let delay = jitter.max(after);
    if delay < left {
        Some(delay)
    } else if after < left && left >= LAST_TRY_MIN {
        Some((left / 2).max(after))
    } else {
        None
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

    #[test]
    fn a_draw_past_the_deadline_becomes_a_last_try_halfway() {
        let ms = Duration::from_millis;
        assert_eq!(next_delay(ms(100), None, ms(1000)), Some(ms(100)));
        assert_eq!(next_delay(ms(100), Some(ms(300)), ms(1000)), Some(ms(300)));
        // The draw would reach the deadline: half the time left instead.
        assert_eq!(next_delay(ms(2500), None, ms(2000)), Some(ms(1000)));
        assert_eq!(
            next_delay(ms(2500), Some(ms(1500)), ms(2000)),
            Some(ms(1500))
        );
        // The server asks for more than is left, or too little is left: give up.
        assert_eq!(next_delay(ms(10), Some(ms(3000)), ms(2000)), None);
        assert_eq!(next_delay(ms(500), None, ms(150)), None);
    }

    #[tokio::test]
    async fn keeps_trying_until_close_to_the_deadline() {
        let t = Instant::now();
        let slow = Policy {
            base: Duration::from_secs(5),
            cap: Duration::from_secs(10),
            failover_cap: Duration::from_secs(10),
            max_attempts: None,
        };
        let r: Result<(), Failure<()>> =
            run("t", "", slow, t + Duration::from_millis(800), || async {
                retry(None)
            })
            .await;
        assert!(matches!(r, Err(Failure::GaveUp { .. })));
        // Without the last tries it would have given up at once on a 0-5 s draw.
        assert!(
            t.elapsed() >= Duration::from_millis(500),
            "{:?}",
            t.elapsed()
        );
        assert!(t.elapsed() < Duration::from_secs(2));
    }

    const FAST: Policy = Policy {
        base: Duration::from_millis(1),
        cap: Duration::from_millis(2),
        failover_cap: Duration::from_millis(2),
        max_attempts: None,
    };

    fn retry<T>(after: Option<Duration>) -> Outcome<T, ()> {
        Outcome::Retry {
            why: "busy".into(),
            after,
        }
    }

    #[tokio::test]
    async fn a_failover_is_retried_soon_and_a_busy_server_later() {
        // The same base (1 s) and the longest draw: a busy server's delay is the base, a
        // failover's is its short cap.
        let policy = Policy {
            base: Duration::from_secs(1),
            cap: Duration::from_secs(10),
            failover_cap: Duration::from_millis(20),
            max_attempts: None,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        let t = Instant::now();
        let mut n = 0;
        let r = run_with(
            "t",
            "",
            policy,
            deadline,
            || {
                n += 1;
                let done = n == 4;
                async move {
                    if done {
                        Outcome::<u8, ()>::Done(1)
                    } else {
                        Outcome::Failover { why: "307".into() }
                    }
                }
            },
            || 0.999,
        )
        .await;
        assert_eq!(r.unwrap(), 1);
        assert!(
            t.elapsed() < Duration::from_millis(800),
            "{:?}",
            t.elapsed()
        );
        let t = Instant::now();
        let mut n = 0;
        let r = run_with(
            "t",
            "",
            policy,
            deadline,
            || {
                n += 1;
                let done = n == 2;
                async move {
                    if done {
                        Outcome::<u8, ()>::Done(2)
                    } else {
                        retry(None)
                    }
                }
            },
            || 0.999,
        )
        .await;
        assert_eq!(r.unwrap(), 2);
        assert!(
            t.elapsed() >= Duration::from_millis(990),
            "{:?}",
            t.elapsed()
        );
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
