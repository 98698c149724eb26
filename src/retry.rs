//! Capped exponential backoff with full jitter, bounded by a deadline. Shared by the Vault
//! and Roles Anywhere clients.
//!
//! Delay before retry `n` (0-based) = uniform(0, min(cap, base * 2^n)), raised to any
//! `Retry-After` the server sent; no retry starts after the deadline.

use std::time::{Duration, Instant};

/// The pure schedule: the delay before retry `attempt` for a uniform draw `r` in [0, 1).
pub fn full_jitter(base: Duration, cap: Duration, attempt: u32, r: f64) -> Duration {
    let exp = base.saturating_mul(1u32 << attempt.min(20)).min(cap);
    exp.mul_f64(r.clamp(0.0, 1.0))
}

/// A uniform draw in [0, 1) from the system RNG.
pub fn random_unit() -> f64 {
    use ring::rand::SecureRandom;
    let mut b = [0u8; 8];
    ring::rand::SystemRandom::new()
        .fill(&mut b)
        .expect("system RNG");
    (u64::from_le_bytes(b) >> 11) as f64 / (1u64 << 53) as f64
}

/// Retry state for one operation.
#[derive(Debug, Clone)]
pub struct Backoff {
    base: Duration,
    cap: Duration,
    deadline: Instant,
    attempt: u32,
}

impl Backoff {
    /// Starts a schedule that gives up at `deadline`.
    pub fn new(base: Duration, cap: Duration, deadline: Instant) -> Backoff {
        Backoff {
            base,
            cap,
            deadline,
            attempt: 0,
        }
    }

    /// Attempts made so far (after each `next_delay`).
    pub fn attempts(&self) -> u32 {
        self.attempt + 1
    }

    /// The deadline.
    pub fn deadline(&self) -> Instant {
        self.deadline
    }

    /// The delay before the next attempt, or `None` when it would pass the deadline.
    /// A `Retry-After` is honoured as a minimum.
    pub fn next_delay(&mut self, retry_after: Option<Duration>) -> Option<Duration> {
        let mut d = full_jitter(self.base, self.cap, self.attempt, random_unit());
        if let Some(ra) = retry_after {
            d = d.max(ra);
        }
        self.attempt += 1;
        if Instant::now() + d >= self.deadline {
            None
        } else {
            Some(d)
        }
    }

    /// Sleeps for the next delay; `false` when the deadline leaves no room for another try.
    pub async fn wait(&mut self, retry_after: Option<Duration>) -> bool {
        match self.next_delay(retry_after) {
            Some(d) => {
                tokio::time::sleep(d).await;
                true
            }
            None => false,
        }
    }
}

/// Parses `Retry-After` in seconds (the HTTP-date form is not used by Vault or AWS here).
pub fn parse_retry_after(v: Option<&http::HeaderValue>) -> Option<Duration> {
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
    }

    #[test]
    fn deadline_stops_retries_and_retry_after_is_a_floor() {
        let mut b = Backoff::new(
            Duration::from_millis(1),
            Duration::from_millis(2),
            Instant::now() + Duration::from_secs(5),
        );
        assert!(b.next_delay(Some(Duration::from_secs(1))).unwrap() >= Duration::from_secs(1));
        assert!(b.next_delay(Some(Duration::from_secs(10))).is_none());
        let r = random_unit();
        assert!((0.0..1.0).contains(&r));
    }
}
