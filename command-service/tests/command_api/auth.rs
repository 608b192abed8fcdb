//! Login, tokens, API keys and roles, through the real HTTP API.

use crate::common::{error_body, expect_error, CommandApi, Exchange, ADMIN};
use jsonwebtoken::{encode, EncodingKey, Header};
use reqwest::{Method, RequestBuilder, StatusCode};
use serde_json::{json, Value};
use sqlx::PgPool;

const SIM: &str = "8988303000123456789";

fn register_body() -> Value {
    json!({"iccid": SIM, "imsi": "901405100000001"})
}

/// A registration of [`SIM`] with `token`, not yet sent.
fn register(app: &CommandApi, token: &str) -> RequestBuilder {
    app.post("/sims", token).json(&register_body())
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
        let login = app.login_request(username, password);
        expect_error(login, StatusCode::UNAUTHORIZED, "INVALID_CREDENTIALS").await;
    }
}

#[sqlx::test(migrator = "eventstore::MIGRATOR")]
async fn login_is_rate_limited_per_username(pool: PgPool) {
    let app = CommandApi::start_with(pool, |config| config.login_rate_per_minute = 3).await;
    let attempt = || app.login_request(ADMIN.0, "wrong-password");
    for _ in 0..3 {
        assert_eq!(attempt().response().await.status(), StatusCode::UNAUTHORIZED);
    }
    let limited = attempt().response().await;
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
    let refresh = |pair: &Value| app.refresh_request(&pair["refresh_token"]);
    let second = refresh(&first).expect(StatusCode::OK).await;
    assert_ne!(second["refresh_token"], first["refresh_token"]);
    assert_ne!(second["access_token"], first["access_token"]);

    // The first refresh token again: reuse. Its family, including the second token, is revoked.
    for (pair, code) in [(&first, "REFRESH_TOKEN_REUSED"), (&second, "INVALID_TOKEN")] {
        expect_error(refresh(pair), StatusCode::UNAUTHORIZED, code).await;
    }
    // Another login is another family, untouched.
    let other = app.login(ADMIN.0, ADMIN.1).await;
    assert_eq!(refresh(&other).response().await.status(), StatusCode::OK);
}

#[sqlx::test(migrator = "eventstore::MIGRATOR")]
async fn a_refresh_token_is_not_an_access_token_and_vice_versa(pool: PgPool) {
    let app = CommandApi::start(pool).await;
    let pair = app.login(ADMIN.0, ADMIN.1).await;
    let refresh_as_access = register(&app, pair["refresh_token"].as_str().unwrap());
    let access_as_refresh = app.refresh_request(&pair["access_token"]);
    for request in [refresh_as_access, access_as_refresh] {
        expect_error(request, StatusCode::UNAUTHORIZED, "INVALID_TOKEN").await;
    }
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
    register(&app, &valid).expect(StatusCode::CREATED).await;

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
        let answer = register(&app, &token).answer().await;
        assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "{what}");
        assert_eq!(answer.body["error"]["code"], "INVALID_TOKEN", "{what}");
    }
    let mut no_audience = claims(600, iss, aud);
    no_audience.as_object_mut().unwrap().remove("aud");
    let missing_audience = register(&app, &sign(&no_audience, secret)).response().await;
    assert_eq!(
        missing_audience.status(),
        StatusCode::UNAUTHORIZED,
        "missing audience"
    );

    let anonymous = app.anonymous(Method::POST, "/sims").json(&register_body());
    expect_error(anonymous, StatusCode::UNAUTHORIZED, "UNAUTHENTICATED").await;
}

fn base64_url(text: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(text)
}

#[sqlx::test(migrator = "eventstore::MIGRATOR")]
async fn a_viewer_cannot_issue_commands(pool: PgPool) {
    let app = CommandApi::start(pool).await;
    let viewer = app.token_for_role("viewer").await;
    let error = expect_error(register(&app, &viewer), StatusCode::FORBIDDEN, "FORBIDDEN").await;
    assert_eq!(error["details"]["required_role"], "operator");

    let operator = app.token_for_role("operator").await;
    register(&app, &operator).expect(StatusCode::CREATED).await;
    // An operator may not manage users or keys.
    let new_key = app
        .post("/auth/api-keys", &operator)
        .json(&json!({"name": "mine"}));
    for request in [app.get("/users", &operator), new_key] {
        expect_error(request, StatusCode::FORBIDDEN, "FORBIDDEN").await;
    }
}

#[sqlx::test(migrator = "eventstore::MIGRATOR")]
async fn api_keys_are_shown_once_stored_hashed_and_revocable(pool: PgPool) {
    let (app, admin) = CommandApi::start_as_admin(pool.clone()).await;
    let new_key = app.post("/auth/api-keys", &admin);
    let created = new_key
        .json(&json!({"name": "fleet-bot", "role": "operator"}))
        .expect(StatusCode::CREATED)
        .await;
    let key = created["key"].as_str().unwrap().to_owned();
    assert!(key.starts_with("iot_key_") && key.len() > 40);
    assert!(key.starts_with(created["prefix"].as_str().unwrap()));

    let stored: String = sqlx::query_scalar("SELECT key_hash FROM api_keys")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_ne!(stored, key, "the key itself is never stored");
    assert_eq!(stored.len(), 64, "a SHA-256 in hex");

    let listed = app.get("/auth/api-keys", &admin).answer().await.body;
    assert_eq!(listed.as_array().unwrap().len(), 1);
    assert!(listed[0].get("key").is_none() && listed[0].get("key_hash").is_none());

    let with_key = |key: &str| {
        let register = app.anonymous(Method::POST, "/sims").json(&register_body());
        register.header("x-api-key", key)
    };
    assert_eq!(with_key(&key).response().await.status(), StatusCode::CREATED);
    let actor: String = sqlx::query_scalar("SELECT metadata->>'actor' FROM events LIMIT 1")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(actor, "api_key:fleet-bot");

    let id = created["id"].as_str().unwrap();
    let revoke = |id: &str| app.delete(&format!("/auth/api-keys/{id}"), &admin);
    assert_eq!(revoke(id).response().await.status(), StatusCode::NO_CONTENT);
    for key in [key.as_str(), "iot_key_made-up-key-made-up-key-made-up-key-0"] {
        expect_error(with_key(key), StatusCode::UNAUTHORIZED, "INVALID_API_KEY").await;
    }
    let unknown = revoke(&uuid::Uuid::now_v7().to_string());
    expect_error(unknown, StatusCode::NOT_FOUND, "API_KEY_NOT_FOUND").await;
}

#[sqlx::test(migrator = "eventstore::MIGRATOR")]
async fn an_expired_api_key_is_refused(pool: PgPool) {
    let (app, admin) = CommandApi::start_as_admin(pool.clone()).await;
    let new_key = |body: Value| app.post("/auth/api-keys", &admin).json(&body);
    let in_five_minutes = (chrono::Utc::now() + chrono::Duration::minutes(5)).to_rfc3339();
    let short_lived = json!({"name": "short-lived", "role": "viewer", "expires_at": in_five_minutes});
    let created = new_key(short_lived).answer().await.body;
    sqlx::query("UPDATE api_keys SET expires_at = now() - interval '1 second'")
        .execute(&pool)
        .await
        .unwrap();
    let register = app.anonymous(Method::POST, "/sims").json(&register_body());
    let expired = register.header("x-api-key", created["key"].as_str().unwrap());
    expect_error(expired, StatusCode::UNAUTHORIZED, "INVALID_API_KEY").await;
    let past = new_key(json!({"name": "born-dead", "expires_at": "2020-01-01T00:00:00Z"}));
    expect_error(past, StatusCode::UNPROCESSABLE_ENTITY, "INVALID_EXPIRY").await;
}

#[sqlx::test(migrator = "eventstore::MIGRATOR")]
async fn admins_create_users_with_good_passwords_and_unique_names(pool: PgPool) {
    let (app, admin) = CommandApi::start_as_admin(pool.clone()).await;
    let create = |body: Value| app.post("/users", &admin).json(&body);
    let ops_one = json!({"username": "Ops.One", "password": "long-enough-pw", "role": "operator"});
    let created = create(ops_one).expect(StatusCode::CREATED).await;
    assert_eq!(created["username"], "ops.one");
    assert!(created.get("password_hash").is_none());
    let hash: String = sqlx::query_scalar("SELECT password_hash FROM users WHERE username = 'ops.one'")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert!(hash.starts_with("$argon2id$"));

    let refused = [
        (
            ("ops.one", "long-enough-pw", "viewer"),
            StatusCode::CONFLICT,
            "USERNAME_TAKEN",
        ),
        (
            ("weak", "short", "viewer"),
            StatusCode::UNPROCESSABLE_ENTITY,
            "WEAK_PASSWORD",
        ),
        (
            ("x-user", "long-enough-pw", "root"),
            StatusCode::UNPROCESSABLE_ENTITY,
            "INVALID_BODY",
        ),
    ];
    for ((username, password, role), status, code) in refused {
        let user = json!({"username": username, "password": password, "role": role});
        expect_error(create(user), status, code).await;
    }

    let users = app.get("/users", &admin).answer().await.body;
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
