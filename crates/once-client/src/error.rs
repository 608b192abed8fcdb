/// Everything a call to the provider can end in. Every variant names the endpoint, in the
/// form `GET /v1/sims/{iccid}/quota/data`, so a log line says which call failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The provider refused the credentials or the token (twice in a row for a call).
    #[error("{endpoint}: the provider refused the API credentials or token")]
    Unauthorized { endpoint: &'static str },
    #[error("{endpoint}: not found at the provider")]
    NotFound { endpoint: &'static str },
    /// Any other 4xx: the request itself was refused; repeating it will not help.
    #[error("{endpoint}: the provider rejected the request ({status}){}", message_suffix(.message))]
    Rejected {
        endpoint: &'static str,
        status: u16,
        message: Option<String>,
    },
    /// A 5xx answer, after the retries allowed for the call.
    #[error("{endpoint}: the provider failed ({status})")]
    Server { endpoint: &'static str, status: u16 },
    /// 429 after the retries allowed for the call.
    #[error("{endpoint}: the provider's rate limit was still exceeded after retrying")]
    RateLimited { endpoint: &'static str },
    /// No answer within the configured time. The request may have been processed.
    #[error("{endpoint}: no answer within the timeout")]
    Timeout { endpoint: &'static str },
    /// The connection failed. `request_sent` is false when it failed before the request left
    /// (refused, DNS), so the provider certainly did not process it.
    #[error("{endpoint}: connection failed ({reason})")]
    Transport {
        endpoint: &'static str,
        reason: String,
        request_sent: bool,
    },
    /// A successful status with a body that is not what the documents describe: malformed or
    /// truncated JSON, an HTML page, missing required fields.
    #[error("{endpoint}: unreadable answer ({reason}); body starts with {body_excerpt:?}")]
    Decode {
        endpoint: &'static str,
        reason: String,
        body_excerpt: String,
    },
    /// The call could not be made as asked (bad base URL, page size out of range, …).
    #[error("{endpoint}: {reason}")]
    Config { endpoint: &'static str, reason: String },
}

fn message_suffix(message: &Option<String>) -> String {
    message.as_deref().map(|m| format!(": {m}")).unwrap_or_default()
}

impl ClientError {
    pub fn endpoint(&self) -> &'static str {
        match self {
            Self::Unauthorized { endpoint }
            | Self::NotFound { endpoint }
            | Self::Rejected { endpoint, .. }
            | Self::Server { endpoint, .. }
            | Self::RateLimited { endpoint }
            | Self::Timeout { endpoint }
            | Self::Transport { endpoint, .. }
            | Self::Decode { endpoint, .. }
            | Self::Config { endpoint, .. } => endpoint,
        }
    }

    /// Whether the same call, made again later, may succeed: the provider was busy,
    /// failing or unreachable, rather than refusing the request.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            Self::Server { .. } | Self::RateLimited { .. } | Self::Timeout { .. } | Self::Transport { .. }
        )
    }

    /// Whether the provider may have carried the request out even though no success was seen:
    /// it was sent and then the answer was lost (timeout, reset), failed (5xx) or unreadable.
    /// For a top-up or an MT SMS this means "check before repeating it".
    pub fn outcome_unknown(&self) -> bool {
        match self {
            Self::Timeout { .. } | Self::Server { .. } | Self::Decode { .. } => true,
            Self::Transport { request_sent, .. } => *request_sent,
            Self::Unauthorized { .. }
            | Self::NotFound { .. }
            | Self::Rejected { .. }
            | Self::RateLimited { .. }
            | Self::Config { .. } => false,
        }
    }

    pub(crate) fn decode(endpoint: &'static str, reason: impl Into<String>, body: &[u8]) -> Self {
        Self::Decode {
            endpoint,
            reason: reason.into(),
            body_excerpt: crate::wire::excerpt(body),
        }
    }
}
