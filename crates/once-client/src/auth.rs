//! The OAuth token, shared by all clones of a client.

use std::time::Duration;

use tokio::sync::Mutex;
use tokio::time::Instant;

/// Renew this long before the provider's `expires_in` runs out, so no call goes out with a
/// token about to lapse in flight.
const RENEW_BEFORE_EXPIRY: Duration = Duration::from_secs(60);
/// What `expires_in` is taken to be when the provider leaves it out (its documented value).
const DEFAULT_LIFETIME: Duration = Duration::from_secs(3600);

#[derive(Clone)]
pub(crate) struct CachedToken {
    pub(crate) value: String,
    renew_at: Instant,
}

impl CachedToken {
    pub(crate) fn new(value: String, expires_in: Option<u64>, fetched_at: Instant) -> Self {
        let lifetime = expires_in.map(Duration::from_secs).unwrap_or(DEFAULT_LIFETIME);
        // A short-lived token is renewed halfway instead, or it would never be used.
        let usable = if lifetime > RENEW_BEFORE_EXPIRY * 2 {
            lifetime - RENEW_BEFORE_EXPIRY
        } else {
            lifetime / 2
        };
        Self {
            value,
            renew_at: fetched_at + usable,
        }
    }

    fn fresh(&self) -> bool {
        Instant::now() < self.renew_at
    }
}

/// Holding the lock while fetching is what makes concurrent callers wait for one renewal
/// instead of each starting their own.
#[derive(Default)]
pub(crate) struct TokenCache {
    current: Mutex<Option<CachedToken>>,
}

impl TokenCache {
    pub(crate) async fn get_or_fetch<F, Fut, E>(&self, fetch: F) -> Result<String, E>
    where
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = Result<CachedToken, E>>,
    {
        let mut current = self.current.lock().await;
        if let Some(token) = current.as_ref().filter(|t| t.fresh()) {
            return Ok(token.value.clone());
        }
        let token = fetch().await?;
        let value = token.value.clone();
        *current = Some(token);
        Ok(value)
    }

    /// Forgets `rejected` if it is still the cached token; a token renewed meanwhile by another
    /// caller is kept, so a burst of 401s leads to one renewal.
    pub(crate) async fn invalidate(&self, rejected: &str) {
        let mut current = self.current.lock().await;
        if current.as_ref().is_some_and(|t| t.value == rejected) {
            *current = None;
        }
    }
}
