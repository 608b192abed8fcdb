//! Login, tokens, API keys and roles, through the real HTTP API.

use crate::common::{error_body, CommandApi, ADMIN};
use jsonwebtoken::{encode, EncodingKey, Header};
use reqwest::StatusCode;
use serde_json::{json, Value};
use sqlx::PgPool;

const SIM: &str = "8988303000123456789";

fn register_body() -> Value {
    json!({"iccid": SIM, "imsi": "901405100000001"})
}

#[sqlx::test(migrator = "eventstore::MIGRATOR")]
async fn login_answers_a_bearer_token_pair(pool: PgPool) {
    let app = CommandApi::start(pool).await;
    let pair = app.login(ADMIN.0, ADMIN.1).await;
    assert_eq!(pair["token_type"], "bearer");
    assert_eq!(pair["expires_in"], 1800);
    assert!(pair["access_token"].as_str().unwrap().split('.').count() == 3);
    assert!(pair["refresh_token"].is_string());
}

#[sqlx::test(migrator = "eventstore::MIGRATOR")]
async fn wrong_password_and_unknown_user_answer_the_same_401(pool: PgPool) {
    let app = CommandApi::start(pool).await;
    for (username, password) in [(ADMIN.0, "wrong-password"), ("nobody", "whatever-password")] {
        let response = app
            .client
            .post(app.api("/auth/login"))
            .json(&json!({"username": username, "password": password}))
            .send()
            .await
            .unwrap();
        error_body(response, StatusCode::UNAUTHORIZED, "INVALID_CREDENTIALS").await;
    }
}

#[sqlx::test(migrator = "eventstore::MIGRATOR")]
async fn login_is_rate_limited_per_username(pool: PgPool) {
    let app = CommandApi::start_with(pool, |config| config.login_rate_per_minute = 3).await;
    let attempt = || {
        app.client
            .post(app.api("/auth/login"))
            .json(&json!({"username": ADMIN.0, "password": "wrong-password"}))
            .send()
    };
    for _ in 0..3 {
        assert_eq!(attempt().await.unwrap().status(), StatusCode::UNAUTHORIZED);
    }
    let limited = attempt().await.unwrap();
    assert_eq!(limited.headers()["x-ratelimit-limit"], "3");
    assert_eq!(limited.headers()["x-ratelimit-remaining"], "0");
    let reset: u64 = limited.headers()["x-ratelimit-reset"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&reset));
    error_body(limited, StatusCode::TOO_MANY_REQUESTS, "RATE_LIMITED").await;
}

#[sqlx::test(migrator = "eventstore::MIGRATOR")]
async fn a_refresh_token_rotates_and_a_reused_one_revokes_its_family(pool: PgPool) {
    let app = CommandApi::start(pool).await;
    let first = app.login(ADMIN.0, ADMIN.1).await;
    let refresh = |token: Value| {
        app.client
            .post(app.api("/auth/refresh"))
            .json(&json!({"refresh_token": token}))
            .send()
    };
    let second = refresh(first["refresh_token"].clone()).await.unwrap();
    assert_eq!(second.status(), StatusCode::OK);
    let second: Value = second.json().await.unwrap();
    assert_ne!(second["refresh_token"], first["refresh_token"]);
    assert_ne!(second["access_token"], first["access_token"]);

    // The first refresh token again: reuse. Its family, including the second token, is revoked.
    error_body(
        refresh(first["refresh_token"].clone()).await.unwrap(),
        StatusCode::UNAUTHORIZED,
        "REFRESH_TOKEN_REUSED",
    )
    .await;
    error_body(
        refresh(second["refresh_token"].clone()).await.unwrap(),
        StatusCode::UNAUTHORIZED,
        "INVALID_TOKEN",
    )
    .await;
    // Another login is another family, untouched.
    let other = app.login(ADMIN.0, ADMIN.1).await;
    assert_eq!(
        refresh(other["refresh_token"].clone()).await.unwrap().status(),
        StatusCode::OK
    );
}

#[sqlx::test(migrator = "eventstore::MIGRATOR")]
async fn a_refresh_token_is_not_an_access_token_and_vice_versa(pool: PgPool) {
    let app = CommandApi::start(pool).await;
    let pair = app.login(ADMIN.0, ADMIN.1).await;
    let response = app
        .post("/sims", pair["refresh_token"].as_str().unwrap())
        .json(&register_body())
        .send()
        .await
        .unwrap();
    error_body(response, StatusCode::UNAUTHORIZED, "INVALID_TOKEN").await;
    let response = app
        .client
        .post(app.api("/auth/refresh"))
        .json(&json!({"refresh_token": pair["access_token"]}))
        .send()
        .await
        .unwrap();
    error_body(response, StatusCode::UNAUTHORIZED, "INVALID_TOKEN").await;
}

fn claims(exp_offset: i64, iss: &str, aud: &str) -> Value {
    let now = chrono::Utc::now().timestamp();
    json!({
        "sub": uuid::Uuid::now_v7(), "iss": iss, "aud": aud, "iat": now - 60, "exp": now + exp_offset,
        "jti": uuid::Uuid::now_v7(), "typ": "access", "role": "admin", "username": "admin",
    })
}

fn sign(claims: &Value, secret: &[u8]) -> String {
    encode(
        &Header::default(),
        claims,
        &EncodingKey::from_secret(secret).unwrap(),
    )
    .unwrap()
}

#[sqlx::test(migrator = "eventstore::MIGRATOR")]
async fn forged_expired_and_foreign_tokens_answer_401(pool: PgPool) {
    let app = CommandApi::start(pool).await;
    let config = command_service::Config::for_tests("postgres://unused").common;
    let secret = config.jwt_secret.as_bytes();
    let (iss, aud) = (config.jwt_issuer.as_str(), config.jwt_audience.as_str());
    // The control: a token we sign ourselves with the right secret and claims is accepted.
    let valid = sign(&claims(600, iss, aud), secret);
    let accepted = app
        .post("/sims", &valid)
        .json(&register_body())
        .send()
        .await
        .unwrap();
    assert_eq!(accepted.status(), StatusCode::CREATED);

    let none_header = base64_url(r#"{"alg":"none","typ":"JWT"}"#);
    let none_body = base64_url(&claims(600, iss, aud).to_string());
    let cases = [
        (
            "wrong signature",
            sign(&claims(600, iss, aud), b"another-secret-another-secret-0000"),
        ),
        ("expired", sign(&claims(-30, iss, aud), secret)),
        ("wrong issuer", sign(&claims(600, "someone-else", aud), secret)),
        ("wrong audience", sign(&claims(600, iss, "another-api"), secret)),
        ("alg none", format!("{none_header}.{none_body}.")),
        ("garbage", "not.a.token".to_owned()),
    ];
    for (what, token) in cases {
        let response = app
            .post("/sims", &token)
            .json(&register_body())
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{what}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"]["code"], "INVALID_TOKEN", "{what}");
    }
    let mut no_audience = claims(600, iss, aud);
    no_audience.as_object_mut().unwrap().remove("aud");
    let response = app
        .post("/sims", &sign(&no_audience, secret))
        .json(&register_body())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "missing audience");

    let anonymous = app
        .client
        .post(app.api("/sims"))
        .json(&register_body())
        .send()
        .await
        .unwrap();
    error_body(anonymous, StatusCode::UNAUTHORIZED, "UNAUTHENTICATED").await;
}

fn base64_url(text: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(text)
}

#[sqlx::test(migrator = "eventstore::MIGRATOR")]
async fn a_viewer_cannot_issue_commands(pool: PgPool) {
    let app = CommandApi::start(pool).await;
    let viewer = app.token_for_role("viewer").await;
    let response = app
        .post("/sims", &viewer)
        .json(&register_body())
        .send()
        .await
        .unwrap();
    let error = error_body(response, StatusCode::FORBIDDEN, "FORBIDDEN").await;
    assert_eq!(error["details"]["required_role"], "operator");

    let operator = app.token_for_role("operator").await;
    let response = app
        .post("/sims", &operator)
        .json(&register_body())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
    // An operator may not manage users or keys.
    let response = app.get("/users", &operator).send().await.unwrap();
    error_body(response, StatusCode::FORBIDDEN, "FORBIDDEN").await;
    let response = app
        .post("/auth/api-keys", &operator)
        .json(&json!({"name": "mine"}))
        .send()
        .await
        .unwrap();
    error_body(response, StatusCode::FORBIDDEN, "FORBIDDEN").await;
}

#[sqlx::test(migrator = "eventstore::MIGRATOR")]
async fn api_keys_are_shown_once_stored_hashed_and_revocable(pool: PgPool) {
    let app = CommandApi::start(pool.clone()).await;
    let admin = app.admin_token().await;
    let created = app
        .post("/auth/api-keys", &admin)
        .json(&json!({"name": "fleet-bot", "role": "operator"}))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), StatusCode::CREATED);
    let created: Value = created.json().await.unwrap();
    let key = created["key"].as_str().unwrap().to_owned();
    assert!(key.starts_with("iot_key_") && key.len() > 40);
    assert!(key.starts_with(created["prefix"].as_str().unwrap()));

    let stored: String = sqlx::query_scalar("SELECT key_hash FROM api_keys")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_ne!(stored, key, "the key itself is never stored");
    assert_eq!(stored.len(), 64, "a SHA-256 in hex");

    let listed: Value = app
        .get("/auth/api-keys", &admin)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(listed.as_array().unwrap().len(), 1);
    assert!(listed[0].get("key").is_none() && listed[0].get("key_hash").is_none());

    let with_key = |key: String| {
        app.client
            .post(app.api("/sims"))
            .header("x-api-key", key)
            .json(&register_body())
            .send()
    };
    assert_eq!(with_key(key.clone()).await.unwrap().status(), StatusCode::CREATED);
    let actor: String = sqlx::query_scalar("SELECT metadata->>'actor' FROM events LIMIT 1")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(actor, "api_key:fleet-bot");

    let id = created["id"].as_str().unwrap();
    let revoked = app
        .delete(&format!("/auth/api-keys/{id}"), &admin)
        .send()
        .await
        .unwrap();
    assert_eq!(revoked.status(), StatusCode::NO_CONTENT);
    error_body(
        with_key(key).await.unwrap(),
        StatusCode::UNAUTHORIZED,
        "INVALID_API_KEY",
    )
    .await;
    error_body(
        with_key("iot_key_made-up-key-made-up-key-made-up-key-0".into())
            .await
            .unwrap(),
        StatusCode::UNAUTHORIZED,
        "INVALID_API_KEY",
    )
    .await;
    let unknown = app
        .delete(&format!("/auth/api-keys/{}", uuid::Uuid::now_v7()), &admin)
        .send()
        .await
        .unwrap();
    error_body(unknown, StatusCode::NOT_FOUND, "API_KEY_NOT_FOUND").await;
}

#[sqlx::test(migrator = "eventstore::MIGRATOR")]
async fn an_expired_api_key_is_refused(pool: PgPool) {
    let app = CommandApi::start(pool.clone()).await;
    let admin = app.admin_token().await;
    let created: Value = app
        .post("/auth/api-keys", &admin)
        .json(&json!({"name": "short-lived", "role": "viewer",
                      "expires_at": (chrono::Utc::now() + chrono::Duration::minutes(5)).to_rfc3339()}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    sqlx::query("UPDATE api_keys SET expires_at = now() - interval '1 second'")
        .execute(&pool)
        .await
        .unwrap();
    let response = app
        .client
        .post(app.api("/sims"))
        .header("x-api-key", created["key"].as_str().unwrap())
        .json(&register_body())
        .send()
        .await
        .unwrap();
    error_body(response, StatusCode::UNAUTHORIZED, "INVALID_API_KEY").await;
    let past = app
        .post("/auth/api-keys", &admin)
        .json(&json!({"name": "born-dead", "expires_at": "2020-01-01T00:00:00Z"}))
        .send()
        .await
        .unwrap();
    error_body(past, StatusCode::UNPROCESSABLE_ENTITY, "INVALID_EXPIRY").await;
}

#[sqlx::test(migrator = "eventstore::MIGRATOR")]
async fn admins_create_users_with_good_passwords_and_unique_names(pool: PgPool) {
    let app = CommandApi::start(pool.clone()).await;
    let admin = app.admin_token().await;
    let create = |body: Value| app.post("/users", &admin).json(&body).send();
    let created = create(json!({"username": "Ops.One", "password": "long-enough-pw", "role": "operator"}))
        .await
        .unwrap();
    assert_eq!(created.status(), StatusCode::CREATED);
    let created: Value = created.json().await.unwrap();
    assert_eq!(created["username"], "ops.one");
    assert!(created.get("password_hash").is_none());
    let hash: String = sqlx::query_scalar("SELECT password_hash FROM users WHERE username = 'ops.one'")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert!(hash.starts_with("$argon2id$"));

    let duplicate = create(json!({"username": "ops.one", "password": "long-enough-pw", "role": "viewer"}))
        .await
        .unwrap();
    error_body(duplicate, StatusCode::CONFLICT, "USERNAME_TAKEN").await;
    let weak = create(json!({"username": "weak", "password": "short", "role": "viewer"}))
        .await
        .unwrap();
    error_body(weak, StatusCode::UNPROCESSABLE_ENTITY, "WEAK_PASSWORD").await;
    let bad_role = create(json!({"username": "x-user", "password": "long-enough-pw", "role": "root"}))
        .await
        .unwrap();
    error_body(bad_role, StatusCode::UNPROCESSABLE_ENTITY, "INVALID_BODY").await;

    let users: Value = app
        .get("/users", &admin)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let names: Vec<&str> = users
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["username"].as_str().unwrap())
        .collect();
    assert_eq!(names, vec!["admin", "ops.one"]);
    assert_eq!(
        app.login("OPS.ONE", "long-enough-pw").await["token_type"],
        "bearer"
    );
}

#[sqlx::test(migrator = "eventstore::MIGRATOR")]
async fn the_bootstrap_admin_is_created_only_when_no_user_exists(pool: PgPool) {
    let app = CommandApi::start(pool.clone()).await;
    app.state
        .bootstrap_admin("second-admin", "another-password")
        .await
        .unwrap();
    let count: i64 = sqlx::query_scalar("SELECT count(*) FROM users")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(count, 1);
    let role: String = sqlx::query_scalar("SELECT role FROM users")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(role, "admin");
}
