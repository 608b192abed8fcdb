//! Per-key (client IP, username, …) rate limits over governor's GCRA.

use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use crate::error::ApiError;

/// Every this many checks, forget keys whose state is back to "full", so a scan over many IPs
/// can't grow the map without bound.
const CLEANUP_EVERY: u64 = 1024;

pub struct KeyedRateLimiter {
    limiter: DefaultKeyedRateLimiter<String>,
    limit: u32,
    checks: AtomicU64,
}

impl std::fmt::Debug for KeyedRateLimiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyedRateLimiter")
            .field("limit", &self.limit)
            .finish_non_exhaustive()
    }
}

impl KeyedRateLimiter {
    /// `max_requests` per `per` and key, as a burst of `max_requests` refilled evenly over
    /// `per` (one request back every `per / max_requests`).
    pub fn new(max_requests: NonZeroU32, per: Duration) -> Self {
        let interval = (per / max_requests.get()).max(Duration::from_nanos(1));
        let quota = Quota::with_period(interval)
            .expect("non-zero interval")
            .allow_burst(max_requests);
        Self {
            limiter: RateLimiter::dashmap(quota),
            limit: max_requests.get(),
            checks: AtomicU64::new(0),
        }
    }

    /// Counts one request for `key`; past the limit, 429 `RATE_LIMITED` whose
    /// `X-RateLimit-Reset`/`Retry-After` is the whole seconds until the next allowed request.
    pub fn check(&self, key: &str) -> Result<(), ApiError> {
        if self.checks.fetch_add(1, Ordering::Relaxed) % CLEANUP_EVERY == CLEANUP_EVERY - 1 {
            self.limiter.retain_recent();
        }
        match self.limiter.check_key(&key.to_owned()) {
            Ok(()) => Ok(()),
            Err(not_until) => {
                let wait = not_until.wait_time_from(DefaultClock::default().now());
                let reset_secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
                Err(ApiError::too_many_requests(self.limit, reset_secs.max(1)))
            }
        }
    }

    pub fn limit(&self) -> u32 {
        self.limit
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allows_the_limit_then_answers_429_with_headers() {
        let limiter = KeyedRateLimiter::new(NonZeroU32::new(3).unwrap(), Duration::from_secs(60));
        for _ in 0..3 {
            limiter.check("10.0.0.1").unwrap();
        }
        let err = limiter.check("10.0.0.1").unwrap_err();
        assert_eq!(err.status, axum::http::StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(err.code, "RATE_LIMITED");
        assert_eq!(err.header("x-ratelimit-limit").unwrap(), "3");
        assert_eq!(err.header("x-ratelimit-remaining").unwrap(), "0");
        // One request comes back every 20 s; the first came back "now + ≤20 s".
        let reset: u64 = err
            .header("x-ratelimit-reset")
            .unwrap()
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!((1..=20).contains(&reset), "reset {reset}");
        assert_eq!(
            err.header("retry-after").unwrap(),
            err.header("x-ratelimit-reset").unwrap()
        );
        // Keys are independent.
        limiter.check("10.0.0.2").unwrap();
    }

    #[test]
    fn recovers_after_the_period() {
        let limiter = KeyedRateLimiter::new(NonZeroU32::new(2).unwrap(), Duration::from_millis(100));
        limiter.check("k").unwrap();
        limiter.check("k").unwrap();
        assert!(limiter.check("k").is_err());
        std::thread::sleep(Duration::from_millis(120));
        assert!(limiter.check("k").is_ok());
    }
}
