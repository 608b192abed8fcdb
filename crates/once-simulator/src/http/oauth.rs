//! `POST /oauth/token`: client credentials as HTTP Basic, `{"grant_type":"client_credentials"}`.

use std::time::Instant;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use base64::Engine;
use serde_json::{json, Value};

use crate::Simulator;

pub async fn token(State(sim): State<Simulator>, headers: HeaderMap, body: Bytes) -> Response {
    let json_content = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.trim_start()
                .to_ascii_lowercase()
                .starts_with("application/json")
        });
    if !json_content {
        return auth_error(
            StatusCode::BAD_REQUEST,
            "UnsupportedContentTypeError",
            "Content-Type not supported",
        );
    }
    let (user, password) = basic_credentials(&headers);
    if user.is_empty() {
        return auth_error(
            StatusCode::BAD_REQUEST,
            "AuthValidationError",
            "Auth header validation error: Missing attributes 'username'",
        );
    }
    if password.is_empty() {
        return auth_error(
            StatusCode::BAD_REQUEST,
            "AuthValidationError",
            "Auth header validation error: Missing attributes 'password'",
        );
    }
    let grant_type = serde_json::from_slice::<Value>(&body)
        .ok()
        .and_then(|v| v.get("grant_type").and_then(Value::as_str).map(str::to_owned));
    match grant_type.as_deref() {
        None => {
            return auth_error(
                StatusCode::BAD_REQUEST,
                "BodyValidationError",
                "Request body validation error: Missing attributes 'grant_type'",
            )
        }
        Some("client_credentials") => {}
        Some(_) => {
            return auth_error(
                StatusCode::BAD_REQUEST,
                "BodyValidationError",
                "Request body validation error: grant_type must be 'client_credentials'",
            )
        }
    }
    let config = sim.config();
    // The documents answer 400 BadCredentials for a user that does not exist; a wrong secret
    // for the existing user is a 401.
    if user != config.client_id {
        return auth_error(StatusCode::BAD_REQUEST, "BadCredentials", "User does not exist.");
    }
    if password != config.client_secret {
        return auth_error(StatusCode::UNAUTHORIZED, "BadCredentials", "Invalid credentials.");
    }
    let mut tokens = sim.tokens();
    let access_token = tokens.issue(Instant::now());
    let expires_in = tokens.ttl.as_secs();
    drop(tokens);
    Json(json!({
        "status_code": 200,
        "access_token": access_token,
        "token_type": "bearer",
        "expires_in": expires_in,
        "user_id": config.client_id,
        "score": "all",
    }))
    .into_response()
}

/// `(user, password)`, empty where missing or unreadable.
fn basic_credentials(headers: &HeaderMap) -> (String, String) {
    let decoded = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("basic"))
        .and_then(|(_, encoded)| {
            base64::engine::general_purpose::STANDARD
                .decode(encoded.trim())
                .ok()
        })
        .and_then(|bytes| String::from_utf8(bytes).ok());
    match decoded.as_deref().and_then(|d| d.split_once(':')) {
        Some((user, password)) => (user.to_owned(), password.to_owned()),
        None => (decoded.unwrap_or_default(), String::new()),
    }
}

fn auth_error(status: StatusCode, code: &str, text: &str) -> Response {
    (
        status,
        Json(json!({"statusCode": status.as_u16(), "errorCode": code, "message": text})),
    )
        .into_response()
}
