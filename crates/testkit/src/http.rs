//! The contract's answers, checked.

use reqwest::{Response, StatusCode};
use serde_json::Value;

/// Reads an error answer and checks the contract's shape (`{"error": {code, message, details,
/// request_id}}`, the request id also in `X-Request-Id`); returns the error object.
pub async fn error_body(response: Response, status: StatusCode, code: &str) -> Value {
    assert_eq!(response.status(), status, "status for {code}");
    let request_id = response
        .headers()
        .get("x-request-id")
        .expect("X-Request-Id on every answer")
        .to_str()
        .unwrap()
        .to_owned();
    let body: Value = response.json().await.expect("a JSON error body");
    let error = &body["error"];
    assert_eq!(error["code"], code, "body: {body}");
    assert!(
        error["message"].as_str().is_some_and(|m| !m.is_empty()),
        "body: {body}"
    );
    assert!(error["details"].is_object(), "body: {body}");
    assert_eq!(error["request_id"], request_id.as_str(), "body: {body}");
    error.clone()
}
