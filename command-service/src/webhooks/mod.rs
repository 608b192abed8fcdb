//! Webhooks in the command API: the settings, the check of a target URL ([`target`]) and the
//! dispatcher that delivers ([`dispatcher`]). The tables are `crates/webhooks`'s.

pub mod dispatcher;
pub mod target;

use std::time::Duration;

/// The webhooks' settings (read once with the rest of the configuration).
#[derive(Debug, Clone)]
pub struct WebhookSettings {
    /// `WEBHOOK_WORKER`, default true: this process delivers (false: it only manages
    /// subscriptions). Replicas share the work: a subscription is leased by one at a time.
    pub worker: bool,
    /// `WEBHOOK_TIMEOUT_MS`, default 5000: one delivery's whole request, connect included.
    pub timeout: Duration,
    /// `WEBHOOK_MAX_ATTEMPTS`, default 10: failed attempts at one event before the
    /// subscription is marked `failing` (it resumes on `PATCH {"status": "active"}`).
    pub max_attempts: i32,
    /// `WEBHOOK_BACKOFF_MS`, default 1000: the wait after the first failed attempt, doubled
    /// after each further one …
    pub backoff: Duration,
    /// … up to `WEBHOOK_BACKOFF_MAX_SECS`, default 300.
    pub backoff_max: Duration,
    /// `WEBHOOK_ALLOW_PRIVATE`, default false: allow targets on loopback, private, link-local
    /// and other internal addresses (a local receiver in development and tests).
    pub allow_private: bool,
    /// `WEBHOOK_LEASE_SECS`, default 30: a subscription claimed by a dispatcher that stopped
    /// answering is claimed again after this.
    pub lease: Duration,
    /// `WEBHOOK_POLL_MS`, default 500: how often the dispatcher looks for new events.
    pub poll: Duration,
    /// Events read per subscription and claim.
    pub batch: i64,
}

impl Default for WebhookSettings {
    fn default() -> Self {
        Self {
            worker: true,
            timeout: Duration::from_secs(5),
            max_attempts: 10,
            backoff: Duration::from_secs(1),
            backoff_max: Duration::from_secs(300),
            allow_private: false,
            lease: Duration::from_secs(30),
            poll: Duration::from_millis(500),
            batch: 100,
        }
    }
}

impl WebhookSettings {
    /// The wait after the `attempts`-th failed attempt in a row.
    pub fn backoff_after(&self, attempts: i32) -> Duration {
        let doublings = attempts.saturating_sub(1).clamp(0, 20) as u32;
        self.backoff
            .saturating_mul(2u32.saturating_pow(doublings))
            .min(self.backoff_max)
    }
}
