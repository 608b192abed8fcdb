use std::fmt;
use std::sync::Arc;
use std::time::Duration;

/// How to reach the provider and how hard to lean on it.
#[derive(Clone)]
pub struct ClientConfig {
    /// e.g. `https://api.1nce.com/management-api` or `http://127.0.0.1:8090`.
    pub base_url: String,
    pub client_id: String,
    pub client_secret: String,
    /// The `/v1/sims…` budget of this client (attempts, retries included); 1NCE allows 10/s
    /// per customer.
    pub requests_per_second: u32,
    /// Per attempt, from connecting until the whole answer is read.
    pub timeout: Duration,
    /// Attempts after the first, for answers worth repeating (429, 5xx, timeouts, resets).
    pub max_retries: u32,
    pub min_backoff: Duration,
    pub max_backoff: Duration,
    pub observer: Option<Arc<dyn CallObserver>>,
}

impl ClientConfig {
    pub fn new(
        base_url: impl Into<String>,
        client_id: impl Into<String>,
        client_secret: impl Into<String>,
    ) -> Self {
        Self {
            base_url: base_url.into(),
            client_id: client_id.into(),
            client_secret: client_secret.into(),
            requests_per_second: 10,
            timeout: Duration::from_secs(30),
            max_retries: 5,
            min_backoff: Duration::from_millis(200),
            max_backoff: Duration::from_secs(20),
            observer: None,
        }
    }
}

// The secret stays out of logs.
impl fmt::Debug for ClientConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientConfig")
            .field("base_url", &self.base_url)
            .field("client_id", &self.client_id)
            .field("client_secret", &"<redacted>")
            .field("requests_per_second", &self.requests_per_second)
            .field("timeout", &self.timeout)
            .field("max_retries", &self.max_retries)
            .field("min_backoff", &self.min_backoff)
            .field("max_backoff", &self.max_backoff)
            .field("observer", &self.observer.as_ref().map(|_| "…"))
            .finish()
    }
}

/// Told about every attempt the client makes, for metrics.
pub trait CallObserver: Send + Sync {
    /// One HTTP attempt ended. `endpoint` is e.g. `GET /v1/sims/{iccid}/quota/data`;
    /// `status` is `None` when no HTTP answer came (timeout, connection failure).
    fn call_finished(&self, endpoint: &'static str, status: Option<u16>, elapsed: Duration);
    /// A `/v1` attempt waited this long for its turn under the rate limit (only waits > 0).
    fn rate_limit_waited(&self, waited: Duration);
}
