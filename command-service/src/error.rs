//! Domain and store errors, as API errors.

use axum::http::StatusCode;
use domain::{DomainError, ErrorKind};
use eventstore::ExecuteError;
use platform::ApiError;
use serde_json::json;

pub fn domain_error(error: &impl DomainError) -> ApiError {
    let status = match error.kind() {
        ErrorKind::Validation => StatusCode::UNPROCESSABLE_ENTITY,
        ErrorKind::NotFound => StatusCode::NOT_FOUND,
        ErrorKind::Conflict => StatusCode::CONFLICT,
        ErrorKind::Gone => StatusCode::GONE,
    };
    ApiError::new(status, error.code(), error.to_string())
}

pub fn execute_error<E: DomainError>(error: ExecuteError<E>) -> ApiError {
    match error {
        ExecuteError::Domain(error) => domain_error(&error),
        ExecuteError::VersionMismatch { expected, actual } => ApiError::precondition_failed(
            "VERSION_MISMATCH",
            format!("If-Match expected version {expected}, but the aggregate is at version {actual}"),
        )
        .with_details(json!({ "expected_version": expected, "current_version": actual })),
        ExecuteError::Conflict => ApiError::conflict(
            "CONCURRENCY_CONFLICT",
            "the aggregate was changed concurrently; retry the command",
        ),
        ExecuteError::IdempotencyKeyReused => ApiError::validation(
            "IDEMPOTENCY_KEY_REUSED",
            "this Idempotency-Key was already used for a different request",
        ),
        ExecuteError::Store(error) => error.into(),
    }
}
