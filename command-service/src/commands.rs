//! What every command route shares: the `Idempotency-Key` and `If-Match` headers, the
//! command's metadata, and the answer.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use eventstore::{CommandContext, EventMetadata, Executed, Idempotency};
use platform::{ApiError, Principal};
use serde::Serialize;
use sha2::{Digest, Sha256};

const MAX_IDEMPOTENCY_KEY_LEN: usize = 255;

/// The command-related request headers, validated.
#[derive(Debug, Clone)]
pub struct CommandHeaders {
    pub idempotency_key: Option<String>,
    pub expected_version: Option<u64>,
    pub request_id: Option<String>,
}

impl<S: Send + Sync> FromRequestParts<S> for CommandHeaders {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, ApiError> {
        Self::from_headers(&parts.headers)
    }
}

impl CommandHeaders {
    pub fn from_headers(headers: &HeaderMap) -> Result<Self, ApiError> {
        let idempotency_key = match headers.get("idempotency-key") {
            None => None,
            Some(value) => {
                let key = value
                    .to_str()
                    .ok()
                    .map(str::trim)
                    .filter(|key| !key.is_empty() && key.len() <= MAX_IDEMPOTENCY_KEY_LEN)
                    .filter(|key| key.chars().all(|c| c.is_ascii_graphic()))
                    .ok_or_else(|| {
                        ApiError::bad_request(
                            "INVALID_IDEMPOTENCY_KEY",
                            "Idempotency-Key must be 1 to 255 visible ASCII characters",
                        )
                    })?;
                Some(key.to_owned())
            }
        };
        let expected_version = match headers.get(header::IF_MATCH) {
            None => None,
            Some(value) => parse_if_match(value)?,
        };
        let request_id = headers
            .get("x-request-id")
            .and_then(|value| value.to_str().ok())
            .map(str::to_owned);
        Ok(Self {
            idempotency_key,
            expected_version,
            request_id,
        })
    }

    /// The command's context: metadata from the principal and the request, the expected
    /// version, and the idempotency key scoped to the principal, with a fingerprint of what
    /// was asked (`what`: route and arguments) so the same key cannot be reused for another
    /// request.
    pub fn context(
        &self,
        principal: &Principal,
        what: &impl Serialize,
        status: StatusCode,
    ) -> CommandContext {
        let mut metadata = EventMetadata::new(principal.actor());
        metadata.request_id = self.request_id.clone();
        CommandContext {
            metadata,
            expected_version: self.expected_version,
            idempotency: self.idempotency_key.as_ref().map(|key| Idempotency {
                scope: principal.actor(),
                key: key.clone(),
                request_hash: fingerprint(what),
                response_status: status.as_u16(),
            }),
        }
    }
}

/// Parses a body that may be empty (then `T::default()`), with the same errors as `ApiJson`.
pub fn optional_json<T: serde::de::DeserializeOwned + Default>(body: &[u8]) -> Result<T, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    serde_json::from_slice(body).map_err(|error| {
        if error.is_syntax() || error.is_eof() {
            ApiError::bad_request("MALFORMED_JSON", "the request body is not valid JSON")
                .with_details(serde_json::json!({ "reason": error.to_string() }))
        } else {
            ApiError::validation(
                "INVALID_BODY",
                "the request body does not match the expected fields",
            )
            .with_details(serde_json::json!({ "reason": error.to_string() }))
        }
    })
}

/// `"3"` (or `W/"3"`) is version 3; `*` matches any version.
fn parse_if_match(value: &HeaderValue) -> Result<Option<u64>, ApiError> {
    let invalid = || {
        ApiError::bad_request(
            "INVALID_IF_MATCH",
            "If-Match must be a quoted version, e.g. \"3\"",
        )
    };
    let text = value.to_str().map_err(|_| invalid())?.trim();
    if text == "*" {
        return Ok(None);
    }
    let text = text.strip_prefix("W/").unwrap_or(text);
    let version = text
        .strip_prefix('"')
        .and_then(|rest| rest.strip_suffix('"'))
        .ok_or_else(invalid)?;
    version.parse().map(Some).map_err(|_| invalid())
}

pub(crate) fn fingerprint(what: &impl Serialize) -> String {
    // serde_json's maps are ordered by key, so equal requests serialise equally.
    let canonical = serde_json::to_vec(what).unwrap_or_default();
    hex::encode(Sha256::digest(&canonical))
}

/// The answer to a command: `{command_id, aggregate_id, version, position}` with the
/// aggregate's version as the `ETag` (usable in `If-Match`), and `Idempotent-Replayed: true`
/// when this is the stored answer of an earlier request with the same key.
pub fn answer(executed: Executed, status: StatusCode, location: Option<String>) -> Response {
    let (status, replayed, answer) = match executed {
        Executed::New { answer, .. } => (status, false, answer),
        Executed::Replayed { status, answer } => (
            StatusCode::from_u16(status).unwrap_or(StatusCode::OK),
            true,
            answer,
        ),
    };
    let etag = format!("\"{}\"", answer.version);
    let mut response = (status, Json(answer)).into_response();
    let headers = response.headers_mut();
    if let Ok(value) = HeaderValue::from_str(&etag) {
        headers.insert(header::ETAG, value);
    }
    if replayed {
        headers.insert("idempotent-replayed", HeaderValue::from_static("true"));
    }
    if let Some(value) = location.and_then(|location| HeaderValue::from_str(&location).ok()) {
        headers.insert(header::LOCATION, value);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(*name, HeaderValue::from_str(value).unwrap());
        }
        map
    }

    #[test]
    fn if_match_takes_a_quoted_version() {
        let parsed = CommandHeaders::from_headers(&headers(&[("if-match", "\"7\"")])).unwrap();
        assert_eq!(parsed.expected_version, Some(7));
        let weak = CommandHeaders::from_headers(&headers(&[("if-match", "W/\"2\"")])).unwrap();
        assert_eq!(weak.expected_version, Some(2));
        let any = CommandHeaders::from_headers(&headers(&[("if-match", "*")])).unwrap();
        assert_eq!(any.expected_version, None);
    }

    #[test]
    fn a_malformed_if_match_is_refused() {
        for bad in ["7", "\"seven\"", "\"-1\"", "\"\""] {
            assert!(
                CommandHeaders::from_headers(&headers(&[("if-match", bad)])).is_err(),
                "{bad}"
            );
        }
    }

    #[test]
    fn idempotency_keys_are_bounded_and_visible() {
        let long = "k".repeat(256);
        assert!(CommandHeaders::from_headers(&headers(&[("idempotency-key", &long)])).is_err());
        assert!(CommandHeaders::from_headers(&headers(&[("idempotency-key", "a b")])).is_err());
        let ok = CommandHeaders::from_headers(&headers(&[("idempotency-key", "order-42")])).unwrap();
        assert_eq!(ok.idempotency_key.as_deref(), Some("order-42"));
    }

    #[test]
    fn equal_requests_have_equal_fingerprints() {
        let a = serde_json::json!({"route": "x", "label": "a", "tags": ["t"]});
        let b = serde_json::json!({"tags": ["t"], "label": "a", "route": "x"});
        let c = serde_json::json!({"route": "x", "label": "b", "tags": ["t"]});
        assert_eq!(fingerprint(&a), fingerprint(&b));
        assert_ne!(fingerprint(&a), fingerprint(&c));
    }
}
