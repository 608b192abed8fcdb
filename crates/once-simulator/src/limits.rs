//! The provider's rate limits (a token bucket per limit, like an API gateway's throttle) and
//! its bearer tokens.

use std::collections::HashMap;
use std::time::{Duration, Instant};

/// `capacity` requests at once, refilled at `per_second`.
pub(crate) struct TokenBucket {
    capacity: f64,
    per_second: f64,
    tokens: f64,
    last: Instant,
}

impl TokenBucket {
    pub fn new(capacity: u32, per_second: f64) -> Self {
        Self {
            capacity: f64::from(capacity),
            per_second,
            tokens: f64::from(capacity),
            last: Instant::now(),
        }
    }

    /// Takes one token, or says how long until one is available.
    pub fn take(&mut self, now: Instant) -> Result<(), Duration> {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.per_second).min(self.capacity);
        self.last = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - self.tokens) / self.per_second))
        }
    }
}

pub(crate) struct Limits {
    /// `None` = no limit.
    pub sims: Option<TokenBucket>,
    pub oauth: Option<TokenBucket>,
}

impl Limits {
    pub fn new(sims_per_sec: u32, oauth_per_min: u32) -> Self {
        Self {
            sims: (sims_per_sec > 0).then(|| TokenBucket::new(sims_per_sec, f64::from(sims_per_sec))),
            oauth: (oauth_per_min > 0)
                .then(|| TokenBucket::new(oauth_per_min, f64::from(oauth_per_min) / 60.0)),
        }
    }
}

/// `Retry-After` in whole seconds, at least 1.
pub(crate) fn retry_after_secs(wait: Duration) -> u64 {
    wait.as_secs_f64().ceil().max(1.0) as u64
}

pub(crate) struct Tokens {
    pub ttl: Duration,
    issued: HashMap<String, Instant>,
}

impl Tokens {
    pub fn new(ttl: Duration) -> Self {
        Self {
            ttl,
            issued: HashMap::new(),
        }
    }

    pub fn issue(&mut self, now: Instant) -> String {
        self.issued.retain(|_, expires| *expires > now);
        let token = format!(
            "sim.{}{}",
            uuid::Uuid::new_v4().simple(),
            uuid::Uuid::new_v4().simple()
        );
        self.issued.insert(token.clone(), now + self.ttl);
        token
    }

    pub fn valid(&self, token: &str, now: Instant) -> bool {
        self.issued.get(token).is_some_and(|expires| *expires > now)
    }

    pub fn revoke_all(&mut self) {
        self.issued.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_allows_a_burst_then_refills() {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(10, 10.0);
        b.last = t0;
        for _ in 0..10 {
            assert!(b.take(t0).is_ok());
        }
        let wait = b.take(t0).unwrap_err();
        assert!(wait <= Duration::from_millis(100) && wait > Duration::ZERO);
        assert_eq!(retry_after_secs(wait), 1);
        assert!(b.take(t0 + Duration::from_millis(100)).is_ok());
    }

    #[test]
    fn tokens_expire_and_can_be_revoked() {
        let t0 = Instant::now();
        let mut tokens = Tokens::new(Duration::from_secs(2));
        let a = tokens.issue(t0);
        assert!(tokens.valid(&a, t0 + Duration::from_secs(1)));
        assert!(!tokens.valid(&a, t0 + Duration::from_secs(2)));
        let b = tokens.issue(t0);
        tokens.revoke_all();
        assert!(!tokens.valid(&b, t0));
    }
}
