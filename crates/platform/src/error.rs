//! The one error shape of every HTTP answer:
//! `{"error":{"code":"SIM_NOT_FOUND","message":"…","details":{…},"request_id":"…"}}`.
//!
//! Handlers return [`ApiError`]. Its `IntoResponse` renders the body (without a request id)
//! and stores the error in the response extensions; [`render_errors`], installed by
//! `http::with_standard_layers`, re-renders it with the request's id, and converts every other
//! response ≥ 400 that no `ApiError` produced (axum's 405, the body limit's 413, a caught
//! panic's 500, a timeout's 408) into the same shape with a code derived from the status.

use std::borrow::Cow;
use std::fmt;

use axum::body::Body;
use axum::extract::Request;
use axum::http::header::{self, HeaderName, HeaderValue};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::Value;

pub use crate::extract::{ApiJson, ApiPath, ApiQuery, IccidPath};

pub const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: StatusCode,
    /// Stable, machine-readable, SCREAMING_SNAKE_CASE: clients branch on it.
    pub code: Cow<'static, str>,
    /// For humans; never a raw database or panic message.
    pub message: String,
    pub details: Option<Value>,
    /// Extra response headers (`WWW-Authenticate`, `Retry-After`, …). A `Vec`, not a
    /// `HeaderMap`, to keep `Result<_, ApiError>` small (clippy's `result_large_err`).
    pub headers: Vec<(HeaderName, HeaderValue)>,
}

type Code = Cow<'static, str>;

impl ApiError {
    pub fn new(status: StatusCode, code: impl Into<Code>, message: impl Into<String>) -> Self {
        Self {
            status,
            code: code.into(),
            message: message.into(),
            details: None,
            headers: Vec::new(),
        }
    }

    pub fn bad_request(code: impl Into<Code>, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }

    /// 401 with `WWW-Authenticate: Bearer` (RFC 6750 §3).
    pub fn unauthorized(code: impl Into<Code>, message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, code, message)
            .with_header(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"))
    }

    pub fn forbidden(code: impl Into<Code>, message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, code, message)
    }

    pub fn not_found(code: impl Into<Code>, message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, code, message)
    }

    pub fn conflict(code: impl Into<Code>, message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, code, message)
    }

    /// 422: well-formed request whose content breaks a rule.
    pub fn validation(code: impl Into<Code>, message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, code, message)
    }

    /// 412: `If-Match` did not match the current version.
    pub fn precondition_failed(code: impl Into<Code>, message: impl Into<String>) -> Self {
        Self::new(StatusCode::PRECONDITION_FAILED, code, message)
    }

    pub fn payload_too_large(code: impl Into<Code>, message: impl Into<String>) -> Self {
        Self::new(StatusCode::PAYLOAD_TOO_LARGE, code, message)
    }

    pub fn unsupported_media_type(code: impl Into<Code>, message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNSUPPORTED_MEDIA_TYPE, code, message)
    }

    /// 429 `RATE_LIMITED` with `X-RateLimit-Limit`, `X-RateLimit-Remaining: 0`,
    /// `X-RateLimit-Reset` and `Retry-After` (both: seconds until the next allowed request).
    pub fn too_many_requests(limit: u32, reset_secs: u64) -> Self {
        let reset = HeaderValue::from(reset_secs);
        Self::new(
            StatusCode::TOO_MANY_REQUESTS,
            "RATE_LIMITED",
            format!("too many requests; retry in {reset_secs} s"),
        )
        .with_details(serde_json::json!({ "limit": limit, "retry_after_secs": reset_secs }))
        .with_header(
            HeaderName::from_static("x-ratelimit-limit"),
            HeaderValue::from(limit),
        )
        .with_header(
            HeaderName::from_static("x-ratelimit-remaining"),
            HeaderValue::from_static("0"),
        )
        .with_header(HeaderName::from_static("x-ratelimit-reset"), reset.clone())
        .with_header(header::RETRY_AFTER, reset)
    }

    pub fn service_unavailable(code: impl Into<Code>, message: impl Into<String>) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, code, message)
    }

    /// 500 `INTERNAL_ERROR`. The cause is logged here and never sent to the client.
    pub fn internal(err: impl fmt::Display) -> Self {
        tracing::error!(error = %err, "internal error");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "INTERNAL_ERROR",
            "internal error",
        )
    }

    pub fn with_details(mut self, details: Value) -> Self {
        self.details = Some(details);
        self
    }

    /// Adds (or replaces) a response header.
    pub fn with_header(mut self, name: HeaderName, value: HeaderValue) -> Self {
        self.headers.retain(|(n, _)| n != name);
        self.headers.push((name, value));
        self
    }

    pub fn header(&self, name: &str) -> Option<&HeaderValue> {
        self.headers
            .iter()
            .find(|(n, _)| n.as_str().eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
    }

    /// The shape for a response ≥ 400 that no `ApiError` produced.
    pub fn from_status(status: StatusCode) -> Self {
        let code: Code = match status {
            StatusCode::BAD_REQUEST => "BAD_REQUEST".into(),
            StatusCode::UNAUTHORIZED => "UNAUTHENTICATED".into(),
            StatusCode::NOT_FOUND => "NOT_FOUND".into(),
            StatusCode::REQUEST_TIMEOUT => "REQUEST_TIMEOUT".into(),
            StatusCode::PAYLOAD_TOO_LARGE => "PAYLOAD_TOO_LARGE".into(),
            StatusCode::UNPROCESSABLE_ENTITY => "VALIDATION_FAILED".into(),
            StatusCode::TOO_MANY_REQUESTS => "RATE_LIMITED".into(),
            StatusCode::INTERNAL_SERVER_ERROR => "INTERNAL_ERROR".into(),
            other => other
                .canonical_reason()
                .map(|r| r.to_ascii_uppercase().replace([' ', '-'], "_").replace('\'', ""))
                .unwrap_or_else(|| format!("HTTP_{}", other.as_u16()))
                .into(),
        };
        let message = match status {
            StatusCode::INTERNAL_SERVER_ERROR => "internal error".to_owned(),
            other => other.canonical_reason().unwrap_or("error").to_ascii_lowercase(),
        };
        Self::new(status, code, message)
    }

    fn body_bytes(&self, request_id: Option<&str>) -> Vec<u8> {
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code.to_string(),
                message: self.message.clone(),
                details: self
                    .details
                    .clone()
                    .unwrap_or_else(|| Value::Object(Default::default())),
                request_id: request_id.map(str::to_owned),
            },
        };
        // Serializing strings and a `Value` cannot fail.
        serde_json::to_vec(&body).unwrap_or_default()
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}: {}", self.status.as_u16(), self.code, self.message)
    }
}

impl std::error::Error for ApiError {}

/// Every error answer, as it goes on the wire: `{"error": {code, message, details, request_id}}`
/// (the contract's shape; the OpenAPI documents take their schema from this type).
#[derive(Debug, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ErrorDetail {
    /// Stable and machine-readable, e.g. `SIM_NOT_FOUND`, `VALIDATION_FAILED`,
    /// `DATABASE_UNAVAILABLE`: clients branch on it.
    #[cfg_attr(feature = "openapi", schema(example = "SIM_NOT_FOUND"))]
    pub code: String,
    /// For humans; never a raw database message.
    pub message: String,
    /// More about the error (the parameter at fault, the limit, …); `{}` when nothing.
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub details: Value,
    /// The request's id, also in the `X-Request-Id` response header.
    pub request_id: Option<String>,
}

/// Marks a response whose error body already carries the request id.
#[derive(Clone, Copy)]
struct Rendered;

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = Response::new(Body::from(self.body_bytes(None)));
        *response.status_mut() = self.status;
        let headers = response.headers_mut();
        for (name, value) in &self.headers {
            headers.insert(name.clone(), value.clone());
        }
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
        response.extensions_mut().insert(self);
        response
    }
}

impl ApiError {
    /// 503 `DATABASE_UNAVAILABLE` with `Retry-After`: the database cannot be reached now (a
    /// saturated pool, a restart, a lost connection). Nothing was written by this request.
    pub fn database_unavailable() -> Self {
        Self::service_unavailable("DATABASE_UNAVAILABLE", "database unavailable, retry later")
            .with_header(header::RETRY_AFTER, HeaderValue::from_static("1"))
    }
}

/// Database errors: an unreachable or restarting database is "try again" (503, see
/// [`crate::db::is_unavailable`]); anything else is internal (500), logged and never echoed.
impl From<sqlx::Error> for ApiError {
    fn from(err: sqlx::Error) -> Self {
        if crate::db::is_unavailable(&err) {
            tracing::warn!(error = %err, "database unavailable");
            return Self::database_unavailable();
        }
        // Class 22 (data exception: a value the database cannot hold or convert) comes from
        // what the client sent, through a check we lack: a 4xx, never a 500. Logged, as it
        // points at a missing validation.
        if let sqlx::Error::Database(db) = &err {
            if db.code().is_some_and(|code| code.starts_with("22")) {
                tracing::warn!(error = %err, "input refused by the database; validate it earlier");
                return Self::validation(
                    "INVALID_VALUE",
                    "a value in the request cannot be stored or compared",
                );
            }
        }
        Self::internal(err)
    }
}

/// The event store's failures: its database errors as above (503 when unreachable); anything
/// else (an event that does not decode, an unknown position the caller did not handle) is
/// internal.
impl From<eventstore::StoreError> for ApiError {
    fn from(err: eventstore::StoreError) -> Self {
        match err {
            eventstore::StoreError::Database(err) => err.into(),
            other => Self::internal(other),
        }
    }
}

/// Middleware (`axum::middleware::from_fn(render_errors)`) giving every error response the
/// contract's shape and the request's id. Must run inside the request-id layer.
pub async fn render_errors(req: Request, next: Next) -> Response {
    let request_id = req
        .headers()
        .get(X_REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let response = next.run(req).await;
    render_response(response, request_id.as_deref())
}

fn render_response(mut response: Response, request_id: Option<&str>) -> Response {
    if response.extensions().get::<Rendered>().is_some() {
        return response; // nested routers: render once
    }
    let error = match response.extensions_mut().remove::<ApiError>() {
        Some(error) => error,
        None if response.status().is_client_error() || response.status().is_server_error() => {
            ApiError::from_status(response.status())
        }
        None => return response,
    };
    let (mut parts, _old_body) = response.into_parts();
    // Keep headers set by the producer (`Allow` on a 405, `Retry-After`, …), fix the body's.
    parts.headers.remove(header::CONTENT_LENGTH);
    parts
        .headers
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    parts.extensions.insert(Rendered);
    Response::from_parts(parts, Body::from(error.body_bytes(request_id)))
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn body_json(response: Response) -> Value {
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 20).await.unwrap();
        serde_json::from_slice(&bytes).unwrap()
    }

    #[tokio::test]
    async fn renders_the_contract_shape_with_details_defaulting_to_empty_object() {
        let response = render_response(
            ApiError::not_found("SIM_NOT_FOUND", "no SIM 8988").into_response(),
            Some("req-1"),
        );
        assert_eq!(response.status(), StatusCode::NOT_FOUND);
        assert_eq!(response.headers()[header::CONTENT_TYPE], "application/json");
        assert_eq!(
            body_json(response).await,
            serde_json::json!({"error": {"code": "SIM_NOT_FOUND", "message": "no SIM 8988",
                "details": {}, "request_id": "req-1"}})
        );
    }

    #[tokio::test]
    async fn unauthorized_sets_www_authenticate() {
        let response = ApiError::unauthorized("UNAUTHENTICATED", "no credentials").into_response();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(response.headers()[header::WWW_AUTHENTICATE], "Bearer");
    }

    #[tokio::test]
    async fn too_many_requests_sets_rate_limit_headers() {
        let response = ApiError::too_many_requests(5, 12).into_response();
        assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
        let h = response.headers();
        assert_eq!(h["x-ratelimit-limit"], "5");
        assert_eq!(h["x-ratelimit-remaining"], "0");
        assert_eq!(h["x-ratelimit-reset"], "12");
        assert_eq!(h[header::RETRY_AFTER], "12");
        assert_eq!(body_json(response).await["error"]["code"], "RATE_LIMITED");
    }

    #[tokio::test]
    async fn internal_never_leaks_its_cause() {
        let response = render_response(
            ApiError::internal("duplicate key value violates unique constraint \"x\"").into_response(),
            Some("r"),
        );
        assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
        let body = body_json(response).await;
        assert_eq!(body["error"]["code"], "INTERNAL_ERROR");
        assert_eq!(body["error"]["message"], "internal error");
        assert!(!body.to_string().contains("duplicate key"));
    }

    #[tokio::test]
    async fn plain_error_responses_are_converted_keeping_their_headers() {
        let plain = (
            StatusCode::METHOD_NOT_ALLOWED,
            [(header::ALLOW, "GET,HEAD")],
            "Method Not Allowed",
        )
            .into_response();
        let response = render_response(plain, Some("abc"));
        assert_eq!(response.headers()[header::ALLOW], "GET,HEAD");
        let body = body_json(response).await;
        assert_eq!(body["error"]["code"], "METHOD_NOT_ALLOWED");
        assert_eq!(body["error"]["request_id"], "abc");
    }

    #[tokio::test]
    async fn success_responses_pass_untouched() {
        let response = render_response((StatusCode::CREATED, "made").into_response(), Some("x"));
        assert_eq!(response.status(), StatusCode::CREATED);
        let bytes = axum::body::to_bytes(response.into_body(), 100).await.unwrap();
        assert_eq!(&bytes[..], b"made");
    }

    #[test]
    fn status_codes_map_to_stable_codes() {
        for (status, code) in [
            (StatusCode::REQUEST_TIMEOUT, "REQUEST_TIMEOUT"),
            (StatusCode::PAYLOAD_TOO_LARGE, "PAYLOAD_TOO_LARGE"),
            (StatusCode::METHOD_NOT_ALLOWED, "METHOD_NOT_ALLOWED"),
            (StatusCode::UNSUPPORTED_MEDIA_TYPE, "UNSUPPORTED_MEDIA_TYPE"),
            (StatusCode::SERVICE_UNAVAILABLE, "SERVICE_UNAVAILABLE"),
            (StatusCode::IM_A_TEAPOT, "IM_A_TEAPOT"),
        ] {
            assert_eq!(ApiError::from_status(status).code, code);
        }
    }
}
