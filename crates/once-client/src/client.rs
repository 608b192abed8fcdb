//! Sending one call: token, rate limit, attempts, retries, and what each answer means.

use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder};
use governor::{DefaultDirectRateLimiter, Quota as GovernorQuota, RateLimiter};
use reqwest::header::{HeaderMap, RETRY_AFTER};
use reqwest::{Method, StatusCode, Url};
use tokio::time::Instant;

use crate::auth::{CachedToken, TokenCache};
use crate::config::ClientConfig;
use crate::limiter::{Priority, PriorityLimiter};
use crate::{decode, endpoint, ClientError};

/// `/oauth` allows 600 requests per minute per IP address.
const OAUTH_PER_MINUTE: u32 = 600;
/// A `Retry-After` longer than this is taken as this: the caller's own timeouts and the next
/// poll cycle are better judges than an open-ended wait.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(300);
/// Connecting gets at most this long, even with a long overall timeout.
const MAX_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// The 1NCE Management API. Cheap to clone: clones share the token, the rate limiter and the
/// HTTP pool; each clone has its own priority lane (see [`OnceClient::with_priority`]).
#[derive(Clone)]
pub struct OnceClient {
    pub(crate) shared: Arc<Shared>,
    pub(crate) priority: Priority,
}

pub(crate) struct Shared {
    http: reqwest::Client,
    base: Url,
    config: ClientConfig,
    tokens: TokenCache,
    api_limiter: PriorityLimiter,
    oauth_limiter: DefaultDirectRateLimiter,
}

/// One request, described once and sent as many times as the retry rules allow.
pub(crate) struct Request {
    pub(crate) endpoint: &'static str,
    pub(crate) method: Method,
    pub(crate) url: Url,
    pub(crate) json: Option<Vec<u8>>,
    /// Whether sending it twice does no harm at the provider (GET, PUT). Anything else is sent
    /// again only when the provider certainly did not process it.
    pub(crate) idempotent: bool,
    /// Whether a success carries a JSON body; a garbled one is then asked for again (when
    /// idempotent), like a reset connection.
    pub(crate) json_answer: bool,
}

/// A complete HTTP answer with its body read.
pub(crate) struct Answer {
    pub(crate) status: StatusCode,
    pub(crate) headers: HeaderMap,
    pub(crate) body: Vec<u8>,
}

enum Credentials<'a> {
    Basic,
    Bearer(&'a str),
}

/// What to do after an attempt that did not succeed.
struct Retry {
    error: ClientError,
    after: Option<Duration>,
}

impl OnceClient {
    pub fn new(config: ClientConfig) -> Result<Self, ClientError> {
        let config_error = |reason: String| ClientError::Config {
            endpoint: "client configuration",
            reason,
        };
        let base = Url::parse(config.base_url.trim())
            .map_err(|e| config_error(format!("base_url {:?} is not a URL: {e}", config.base_url)))?;
        if !matches!(base.scheme(), "http" | "https") || base.cannot_be_a_base() {
            return Err(config_error(format!(
                "base_url {:?} is not an http(s) URL",
                config.base_url
            )));
        }
        if config.client_id.is_empty() || config.client_secret.is_empty() {
            return Err(config_error(
                "client_id and client_secret are required".to_owned(),
            ));
        }
        if config.requests_per_second == 0 {
            return Err(config_error("requests_per_second must be at least 1".to_owned()));
        }
        if config.timeout.is_zero() {
            return Err(config_error("timeout must be longer than zero".to_owned()));
        }
        if config.min_backoff > config.max_backoff {
            return Err(config_error("min_backoff is longer than max_backoff".to_owned()));
        }
        let http = reqwest::Client::builder()
            .timeout(config.timeout)
            .connect_timeout(config.timeout.min(MAX_CONNECT_TIMEOUT))
            .user_agent(concat!("once-client/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| config_error(format!("the HTTP client could not be built: {e}")))?;
        let oauth_quota =
            GovernorQuota::per_minute(NonZeroU32::new(OAUTH_PER_MINUTE).unwrap_or(NonZeroU32::MIN))
                .allow_burst(NonZeroU32::MIN);
        Ok(Self {
            shared: Arc::new(Shared {
                http,
                base,
                api_limiter: PriorityLimiter::per_second(config.requests_per_second),
                oauth_limiter: RateLimiter::direct(oauth_quota),
                tokens: TokenCache::default(),
                config,
            }),
            priority: Priority::Background,
        })
    }

    /// The same client (same token, limiter and pool) whose calls wait in `priority`'s lane.
    pub fn with_priority(&self, priority: Priority) -> OnceClient {
        Self {
            shared: self.shared.clone(),
            priority,
        }
    }

    pub fn priority(&self) -> Priority {
        self.priority
    }

    /// The `/v1` call budget this client paces itself to.
    pub fn requests_per_second(&self) -> u32 {
        self.shared.config.requests_per_second
    }

    /// `{base}/{segments…}?{query}`, each segment escaped as needed.
    pub(crate) fn url(&self, segments: &[&str], query: &[(&str, String)]) -> Url {
        let mut url = self.shared.base.clone();
        if let Ok(mut path) = url.path_segments_mut() {
            path.pop_if_empty().extend(segments);
        }
        if !query.is_empty() {
            let mut pairs = url.query_pairs_mut();
            for (name, value) in query {
                pairs.append_pair(name, value);
            }
        }
        url
    }

    /// Sends an authorised `/v1` call. A 401 renews the token once and repeats the call once.
    pub(crate) async fn send(&self, request: &Request) -> Result<Answer, ClientError> {
        let mut renewed = false;
        loop {
            let token = self.token().await?;
            match self.with_retries(request, Credentials::Bearer(&token)).await {
                Err(ClientError::Unauthorized { .. }) if !renewed => {
                    tracing::info!(endpoint = request.endpoint, "token refused; renewing it once");
                    self.shared.tokens.invalidate(&token).await;
                    renewed = true;
                }
                outcome => return outcome,
            }
        }
    }

    async fn token(&self) -> Result<String, ClientError> {
        self.shared.tokens.get_or_fetch(|| self.fetch_token()).await
    }

    async fn fetch_token(&self) -> Result<CachedToken, ClientError> {
        let request = Request {
            endpoint: endpoint::TOKEN,
            method: Method::POST,
            url: self.url(&["oauth", "token"], &[]),
            json: Some(br#"{"grant_type":"client_credentials"}"#.to_vec()),
            // Asking for a token twice only yields two tokens.
            idempotent: true,
            json_answer: true,
        };
        let fetched_at = Instant::now();
        let answer = match self.with_retries(&request, Credentials::Basic).await {
            Ok(answer) => answer,
            // The provider answers wrong credentials with 400 (BadCredentials) or 401/403.
            Err(ClientError::Rejected { status, message, .. }) if matches!(status, 400 | 401 | 403) => {
                tracing::warn!(
                    status,
                    message = message.as_deref().unwrap_or(""),
                    "OAuth token refused"
                );
                return Err(ClientError::Unauthorized {
                    endpoint: endpoint::TOKEN,
                });
            }
            Err(error) => return Err(error),
        };
        let token = decode::token(&answer.body)?;
        tracing::debug!(expires_in = ?token.expires_in, "OAuth token obtained");
        Ok(CachedToken::new(token.access_token, token.expires_in, fetched_at))
    }

    /// Attempts until success, a final answer, or the retries are used up.
    async fn with_retries(
        &self,
        request: &Request,
        credentials: Credentials<'_>,
    ) -> Result<Answer, ClientError> {
        let config = &self.shared.config;
        let mut backoff = ExponentialBuilder::default()
            .with_min_delay(config.min_backoff)
            .with_max_delay(config.max_backoff)
            .with_factor(2.0)
            .with_jitter()
            .without_max_times()
            .build();
        let mut retries = 0;
        loop {
            let retry = match self.attempt(request, &credentials).await {
                Ok(answer) => match self.judge(request, &credentials, answer) {
                    Ok(answer) => return Ok(answer),
                    Err(retry) => retry?,
                },
                Err(error) => self.judge_failure(request, error)?,
            };
            if retries >= config.max_retries {
                return Err(retry.error);
            }
            retries += 1;
            let pause = backoff
                .next()
                .unwrap_or(config.max_backoff)
                .min(config.max_backoff)
                .max(retry.after.unwrap_or_default());
            tracing::debug!(
                endpoint = request.endpoint,
                error = %retry.error,
                retry = retries,
                pause_ms = pause.as_millis() as u64,
                "retrying"
            );
            tokio::time::sleep(pause).await;
        }
    }

    /// One HTTP exchange, body included, within the rate limit.
    async fn attempt(
        &self,
        request: &Request,
        credentials: &Credentials<'_>,
    ) -> Result<Answer, reqwest::Error> {
        let shared = &self.shared;
        let mut builder = shared.http.request(request.method.clone(), request.url.clone());
        match credentials {
            Credentials::Basic => {
                shared.oauth_limiter.until_ready().await;
                builder = builder.basic_auth(&shared.config.client_id, Some(&shared.config.client_secret));
            }
            Credentials::Bearer(token) => {
                let waited = shared.api_limiter.acquire(self.priority).await;
                if let Some(observer) = shared.config.observer.as_ref().filter(|_| !waited.is_zero()) {
                    observer.rate_limit_waited(waited);
                }
                builder = builder.bearer_auth(token);
            }
        }
        builder = match &request.json {
            Some(json) => builder
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(json.clone()),
            // An explicit empty body, so a POST carries `Content-Length: 0`.
            None if request.method != Method::GET => builder.body(Vec::new()),
            None => builder,
        };
        let started = Instant::now();
        let outcome = async {
            let response = builder.send().await?;
            let status = response.status();
            let headers = response.headers().clone();
            let body = response.bytes().await?.to_vec();
            Ok(Answer {
                status,
                headers,
                body,
            })
        }
        .await;
        if let Some(observer) = &shared.config.observer {
            let status = outcome
                .as_ref()
                .ok()
                .map(|answer: &Answer| answer.status.as_u16());
            observer.call_finished(request.endpoint, status, started.elapsed());
        }
        outcome
    }

    /// What an HTTP answer means: success, a final error (`Err(Err(…))`), or worth another
    /// attempt (`Err(Ok(…))`).
    fn judge(
        &self,
        request: &Request,
        credentials: &Credentials<'_>,
        answer: Answer,
    ) -> Result<Answer, Result<Retry, ClientError>> {
        let endpoint = request.endpoint;
        let status = answer.status.as_u16();
        match status {
            // Broken JSON (cut short, an HTML page from a gateway) is a fault on the way, not
            // the provider's answer; valid JSON of the wrong shape is final and left to decoding.
            200..=299 if request.idempotent && request.json_answer && garbled(&answer.body) => {
                Err(Ok(Retry {
                    error: decode::json::<serde::de::IgnoredAny>(endpoint, &answer.body)
                        .err()
                        .unwrap_or_else(|| ClientError::decode(endpoint, "unreadable JSON", &answer.body)),
                    after: None,
                }))
            }
            200..=299 => Ok(answer),
            401 if matches!(credentials, Credentials::Bearer(_)) => {
                Err(Err(ClientError::Unauthorized { endpoint }))
            }
            404 => Err(Err(ClientError::NotFound { endpoint })),
            // Over the limit: the provider refused it before doing anything, so even a
            // top-up or an SMS may be sent again.
            429 => Err(Ok(Retry {
                error: ClientError::RateLimited { endpoint },
                after: retry_after(&answer.headers),
            })),
            500..=599 if request.idempotent => Err(Ok(Retry {
                error: ClientError::Server { endpoint, status },
                after: retry_after(&answer.headers),
            })),
            500..=599 => Err(Err(ClientError::Server { endpoint, status })),
            _ => Err(Err(ClientError::Rejected {
                endpoint,
                status,
                message: provider_message(&answer.body),
            })),
        }
    }

    /// What an attempt without an HTTP answer means.
    fn judge_failure(&self, request: &Request, error: reqwest::Error) -> Result<Retry, ClientError> {
        let endpoint = request.endpoint;
        // A connect error happens before a byte of the request leaves.
        let request_sent = !error.is_connect();
        let error = if error.is_timeout() && request_sent {
            ClientError::Timeout { endpoint }
        } else {
            ClientError::Transport {
                endpoint,
                reason: describe(&error),
                request_sent,
            }
        };
        if request.idempotent || !request_sent {
            Ok(Retry { error, after: None })
        } else {
            Err(error)
        }
    }
}

fn garbled(body: &[u8]) -> bool {
    serde_json::from_slice::<serde::de::IgnoredAny>(body).is_err()
}

/// `Retry-After` in seconds or as an HTTP date.
fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let text = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    let wait = match text.parse::<u64>() {
        Ok(seconds) => Duration::from_secs(seconds),
        Err(_) => {
            let at = chrono::DateTime::parse_from_rfc2822(text).ok()?;
            (at.with_timezone(&chrono::Utc) - chrono::Utc::now())
                .to_std()
                .unwrap_or_default()
        }
    };
    Some(wait.min(MAX_RETRY_AFTER))
}

/// The provider's `{"message": …}`, when the error body has one.
fn provider_message(body: &[u8]) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct ErrorBody {
        message: Option<String>,
    }
    serde_json::from_slice::<ErrorBody>(body)
        .ok()
        .and_then(|b| b.message)
        .map(|m| m.trim().to_owned())
        .filter(|m| !m.is_empty())
}

/// The error and its causes on one line (reqwest's own message is often just "error sending
/// request").
fn describe(error: &reqwest::Error) -> String {
    let mut text = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    if let Some(url) = error.url() {
        text = text.replace(url.as_str(), url.path());
    }
    text
}
