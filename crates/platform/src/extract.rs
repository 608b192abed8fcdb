//! Extractors whose rejections use the contract's error shape instead of axum's plain text.

use axum::body::Bytes;
use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Path, Query, Request};
use axum::http::request::Parts;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::json;

use crate::error::ApiError;

/// The `{iccid}` of a route whose one path parameter it is, parsed and normalised (19 digits,
/// or 20 with the right Luhn digit): every handler of a SIM takes it instead of parsing a
/// string itself. Rejections: a malformed path → 400 (as [`ApiPath`]); not an ICCID → 422
/// with the domain's code (`INVALID_ICCID`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IccidPath(pub domain::Iccid);

impl<S: Send + Sync> FromRequestParts<S> for IccidPath {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let ApiPath(raw) = ApiPath::<String>::from_request_parts(parts, state).await?;
        domain::Iccid::parse(&raw)
            .map(Self)
            .map_err(|error| ApiError::validation(domain::DomainError::code(&error), error.to_string()))
    }
}

/// JSON body in, JSON body out. Rejections: no/wrong content type → 415
/// `UNSUPPORTED_MEDIA_TYPE`; invalid JSON → 400 `MALFORMED_JSON`; valid JSON of the wrong shape
/// (unknown field, missing field, wrong type), or with a NUL character in a string (nothing
/// the platform stores can hold one) → 422 `INVALID_BODY` with the reason in
/// `details.reason`; body over the limit → 413 `PAYLOAD_TOO_LARGE`.
#[derive(Debug, Clone, Copy, Default)]
pub struct ApiJson<T>(pub T);

impl<T, S> FromRequest<S> for ApiJson<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let value = match Json::<serde_json::Value>::from_request(req, state).await {
            Ok(Json(value)) => value,
            Err(rejection) => return Err(json_rejection(rejection)),
        };
        if let Some(path) = nul_in(&value, String::new()) {
            return Err(
                ApiError::validation("INVALID_BODY", "the request body does not match the schema")
                    .with_details(json!({ "reason": format!("{path}: NUL characters are not allowed") })),
            );
        }
        serde_path_to_error::deserialize(value)
            .map(Self)
            .map_err(|error| {
                let path = error.path().to_string();
                let reason = if path == "." {
                    error.inner().to_string()
                } else {
                    format!("{path}: {}", error.inner())
                };
                ApiError::validation("INVALID_BODY", "the request body does not match the schema")
                    .with_details(json!({ "reason": reason }))
            })
    }
}

/// `Option<ApiJson<T>>`: an absent or all-whitespace body is `None` (a route whose body is
/// optional, such as a cookie refresh); any other body is read exactly as [`ApiJson`] reads
/// it, with the same refusals.
impl<T, S> axum::extract::OptionalFromRequest<S> for ApiJson<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Option<Self>, Self::Rejection> {
        let (parts, body) = req.into_parts();
        let request = Request::from_parts(parts.clone(), body);
        let bytes = Bytes::from_request(request, state).await.map_err(|rejection| {
            if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::payload_too_large("PAYLOAD_TOO_LARGE", "the request body is too large")
            } else {
                ApiError::bad_request("INVALID_BODY", "the request body could not be read")
                    .with_details(json!({ "reason": rejection.body_text() }))
            }
        })?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(None);
        }
        let request = Request::from_parts(parts, axum::body::Body::from(bytes));
        <Self as FromRequest<S>>::from_request(request, state)
            .await
            .map(Some)
    }
}

/// Where a string (or key) of `value` holds a NUL character, as a path like `tags[2]`.
fn nul_in(value: &serde_json::Value, at: String) -> Option<String> {
    let here = || if at.is_empty() { ".".to_owned() } else { at.clone() };
    match value {
        serde_json::Value::String(s) => s.contains('\0').then(here),
        serde_json::Value::Array(items) => items
            .iter()
            .enumerate()
            .find_map(|(i, item)| nul_in(item, format!("{at}[{i}]"))),
        serde_json::Value::Object(fields) => fields.iter().find_map(|(key, item)| {
            let path = if at.is_empty() {
                key.clone()
            } else {
                format!("{at}.{key}")
            };
            if key.contains('\0') {
                return Some(path);
            }
            nul_in(item, path)
        }),
        _ => None,
    }
}

/// Whether a raw query string or path holds a NUL character (`%00`, decoded or not).
fn has_nul(raw: &str) -> bool {
    raw.contains('\0') || raw.to_ascii_lowercase().contains("%00")
}

impl<T: Serialize> IntoResponse for ApiJson<T> {
    fn into_response(self) -> Response {
        Json(self.0).into_response()
    }
}

fn json_rejection(rejection: JsonRejection) -> ApiError {
    match rejection {
        JsonRejection::MissingJsonContentType(_) => ApiError::unsupported_media_type(
            "UNSUPPORTED_MEDIA_TYPE",
            "expected a request with Content-Type: application/json",
        ),
        JsonRejection::JsonSyntaxError(err) => {
            ApiError::bad_request("MALFORMED_JSON", "the request body is not valid JSON")
                .with_details(json!({ "reason": innermost(&err) }))
        }
        JsonRejection::JsonDataError(err) => {
            ApiError::validation("INVALID_BODY", "the request body does not match the schema")
                .with_details(json!({ "reason": innermost(&err) }))
        }
        // Buffering errors: the body-limit one is the only one a client can cause on purpose.
        other if other.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            ApiError::payload_too_large("PAYLOAD_TOO_LARGE", "the request body is too large")
        }
        other => ApiError::bad_request("INVALID_BODY", "the request body could not be read")
            .with_details(json!({ "reason": other.body_text() })),
    }
}

/// Query string parsed into `T`; a bad one is 400 `INVALID_QUERY` with `details.reason`.
#[derive(Debug, Clone, Copy, Default)]
pub struct ApiQuery<T>(pub T);

impl<T, S> FromRequestParts<S> for ApiQuery<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        if parts.uri.query().is_some_and(has_nul) {
            return Err(ApiError::bad_request("INVALID_QUERY", "invalid query string")
                .with_details(json!({ "reason": "NUL characters are not allowed" })));
        }
        Query::<T>::from_request_parts(parts, state)
            .await
            .map(|Query(v)| Self(v))
            .map_err(|rejection: QueryRejection| {
                ApiError::bad_request("INVALID_QUERY", "invalid query string")
                    .with_details(json!({ "reason": innermost(&rejection) }))
            })
    }
}

/// Path parameters parsed into `T`; a bad one is 400 `INVALID_PATH` with `details.reason`.
#[derive(Debug, Clone, Copy, Default)]
pub struct ApiPath<T>(pub T);

impl<T, S> FromRequestParts<S> for ApiPath<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        if has_nul(parts.uri.path()) {
            return Err(ApiError::bad_request("INVALID_PATH", "invalid path parameter")
                .with_details(json!({ "reason": "NUL characters are not allowed" })));
        }
        match Path::<T>::from_request_parts(parts, state).await {
            Ok(Path(v)) => Ok(Self(v)),
            // A programming error (no path params on this route), not the client's fault.
            Err(rejection @ PathRejection::MissingPathParams(_)) => {
                Err(ApiError::internal(rejection.body_text()))
            }
            Err(rejection) => Err(ApiError::bad_request("INVALID_PATH", "invalid path parameter")
                .with_details(json!({ "reason": innermost(&rejection) }))),
        }
    }
}

/// The deepest error of a chain: the serde message, without axum's generic prefixes.
fn innermost(err: &(dyn std::error::Error + 'static)) -> String {
    let mut current = err;
    while let Some(source) = current.source() {
        current = source;
    }
    current.to_string()
}
