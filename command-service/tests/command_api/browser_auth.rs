//! The browser session (refresh token in the `simp_refresh` cookie, guarded by the Origin
//! check), logout, who-am-I, and admins' changes to users, through the real HTTP API.

use crate::common::{expect_error, CommandApi, Exchange, ADMIN};
use reqwest::header::{COOKIE, ORIGIN, SET_COOKIE};
use reqwest::{Method, RequestBuilder, StatusCode};
use serde_json::{json, Value};
use sqlx::PgPool;

const PASSWORD: &str = "correct-horse-battery";
const ATTRIBUTES: &str = "HttpOnly; Secure; SameSite=Strict; Path=/api/v1/auth";

/// The origin the test's requests are addressed to (what a page served by the API sends).
fn own_origin(app: &CommandApi) -> String {
    format!("http://{}", app.addr)
}

/// A request to `path` from the API's own origin.
fn from_own_origin(app: &CommandApi, path: &str) -> RequestBuilder {
    app.anonymous(Method::POST, path).header(ORIGIN, own_origin(app))
}

fn cookie_login(app: &CommandApi, username: &str, password: &str) -> RequestBuilder {
    from_own_origin(app, "/auth/login")
        .json(&json!({"username": username, "password": password, "session": "cookie"}))
}

/// `path` with the refresh cookie `token` and no body, from the API's own origin.
fn with_cookie(app: &CommandApi, path: &str, token: &str) -> RequestBuilder {
    from_own_origin(app, path).header(COOKIE, format!("other=1; simp_refresh={token}"))
}

/// The refresh token a cookie-mode answer sets, after checking the cookie's exact form and
/// that the body holds no refresh token.
fn refresh_cookie_of(answer: &testkit::http::Answer) -> String {
    let cookie = answer.header(SET_COOKIE.as_str());
    let (token, attributes) = cookie
        .strip_prefix("simp_refresh=")
        .and_then(|rest| rest.split_once("; "))
        .unwrap_or_else(|| panic!("not the refresh cookie: {cookie}"));
    assert_eq!(attributes, format!("{ATTRIBUTES}; Max-Age=604800"));
    assert_eq!(token.split('.').count(), 3, "a JWT: {cookie}");
    assert!(answer.body.get("refresh_token").is_none(), "{}", answer.body);
    assert_eq!(answer.body["token_type"], "bearer");
    assert_eq!(answer.body["expires_in"], 1800);
    assert!(answer.body["access_token"].is_string());
    token.to_owned()
}

fn assert_cleared(answer: &testkit::http::Answer) {
    assert_eq!(
        answer.header(SET_COOKIE.as_str()),
        format!("simp_refresh=; {ATTRIBUTES}; Max-Age=0")
    );
}

/// A cookie refresh with `token`, answered 200: the rotated cookie's token.
async fn refresh_by_cookie(app: &CommandApi, token: &str) -> String {
    let answer = with_cookie(app, "/auth/refresh", token).expect_answer(StatusCode::OK);
    refresh_cookie_of(&answer.await)
}

async fn login_cookie(app: &CommandApi, username: &str, password: &str) -> (String, String) {
    let answer = cookie_login(app, username, password)
        .expect_answer(StatusCode::OK)
        .await;
    let refresh = refresh_cookie_of(&answer);
    (answer.body["access_token"].as_str().unwrap().to_owned(), refresh)
}

/// Creates a user through the API and returns their id.
async fn create_user(app: &CommandApi, admin: &str, username: &str, role: &str) -> String {
    let body = json!({"username": username, "password": PASSWORD, "role": role});
    let created = app
        .post("/users", admin)
        .json(&body)
        .expect(StatusCode::CREATED)
        .await;
    created["id"].as_str().unwrap().to_owned()
}

fn change_user(app: &CommandApi, token: &str, id: &str, change: Value) -> RequestBuilder {
    app.patch(&format!("/users/{id}"), token).json(&change)
}

async fn me(app: &CommandApi, token: &str) -> Value {
    app.get("/auth/me", token).expect(StatusCode::OK).await
}

#[sqlx::test(migrator = "eventstore::MIGRATOR")]
async fn a_cookie_login_sets_the_refresh_cookie_and_json_mode_stays_as_it_was(pool: PgPool) {
    let app = CommandApi::start(pool.clone()).await;
    let (access, refresh) = login_cookie(&app, ADMIN.0, ADMIN.1).await;
    assert_eq!(me(&app, &access).await["username"], ADMIN.0);
    let stored: i64 = sqlx::query_scalar("SELECT count(*) FROM refresh_tokens WHERE revoked_at IS NULL")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(stored, 1, "the cookie's token is recorded like a JSON-mode one");
    assert_ne!(access, refresh);

    let json_login = app
        .login_request(ADMIN.0, ADMIN.1)
        .expect_answer(StatusCode::OK)
        .await;
    assert!(json_login.body["refresh_token"].is_string());
    assert!(json_login.headers.get(SET_COOKIE).is_none());
    let explicit = json!({"username": ADMIN.0, "password": ADMIN.1, "session": "json"});
    let explicit = app.anonymous(Method::POST, "/auth/login").json(&explicit);
    assert!(explicit.expect(StatusCode::OK).await["refresh_token"].is_string());
    let unknown_mode = json!({"username": ADMIN.0, "password": ADMIN.1, "session": "jar"});
    let unknown_mode = app.anonymous(Method::POST, "/auth/login").json(&unknown_mode);
    expect_error(unknown_mode, StatusCode::UNPROCESSABLE_ENTITY, "INVALID_BODY").await;
}

#[sqlx::test(migrator = "eventstore::MIGRATOR")]
async fn a_cookie_refresh_rotates_and_a_reused_cookie_revokes_the_family(pool: PgPool) {
    let app = CommandApi::start(pool).await;
    let (_, first) = login_cookie(&app, ADMIN.0, ADMIN.1).await;
    let second = refresh_by_cookie(&app, &first).await;
    assert_ne!(second, first);
    // `{}` is cookie mode too.
    let third = with_cookie(&app, "/auth/refresh", &second).json(&json!({}));
    let third = refresh_cookie_of(&third.expect_answer(StatusCode::OK).await);

    // The first cookie again: reuse. The family, the live third token included, is revoked,
    // and the browser is told to drop the cookie.
    for (token, code) in [(&first, "REFRESH_TOKEN_REUSED"), (&third, "INVALID_TOKEN")] {
        let answer = with_cookie(&app, "/auth/refresh", token).answer().await;
        assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
        assert_eq!(answer.body["error"]["code"], code);
        assert_cleared(&answer);
    }
    // A cookie-mode refresh without the cookie is refused as such.
    let without = from_own_origin(&app, "/auth/refresh");
    expect_error(without, StatusCode::UNAUTHORIZED, "INVALID_TOKEN").await;
}

#[sqlx::test(migrator = "eventstore::MIGRATOR")]
async fn cookie_routes_need_an_allowed_origin_and_json_mode_none(pool: PgPool) {
    let listed = "https://dashboard.example.com";
    let app = CommandApi::start_with(pool, |config| {
        config.auth_allowed_origins = command_service::config::AllowedOrigins::parse(listed).unwrap();
    })
    .await;
    let (_, refresh) = login_cookie(&app, ADMIN.0, ADMIN.1).await;
    let login_body = json!({"username": ADMIN.0, "password": ADMIN.1, "session": "cookie"});
    let cookie = format!("simp_refresh={refresh}");
    // Each cookie route, without the Origin header.
    let cookie_routes = || {
        [
            app.anonymous(Method::POST, "/auth/login").json(&login_body),
            app.anonymous(Method::POST, "/auth/refresh")
                .header(COOKIE, &cookie),
            app.anonymous(Method::POST, "/auth/logout")
                .header(COOKIE, &cookie),
        ]
    };
    for origin in [
        None,
        Some("http://evil.example"),
        Some("null"),
        Some("https://127.0.0.1"),
    ] {
        for request in cookie_routes() {
            let request = match origin {
                Some(origin) => request.header(ORIGIN, origin),
                None => request,
            };
            let error = expect_error(request, StatusCode::FORBIDDEN, "ORIGIN_NOT_ALLOWED").await;
            assert_eq!(error["details"]["origin"], json!(origin));
        }
    }
    // Refused before anything happened: the cookie still works, from a listed origin and from
    // the origin a proxy reports.
    let listed_origin = app
        .anonymous(Method::POST, "/auth/refresh")
        .header(ORIGIN, listed);
    let answer = listed_origin
        .header(COOKIE, &cookie)
        .expect_answer(StatusCode::OK)
        .await;
    let refresh = refresh_cookie_of(&answer);
    let proxied = app
        .anonymous(Method::POST, "/auth/refresh")
        .header(COOKIE, format!("simp_refresh={refresh}"))
        .header("x-forwarded-proto", "https")
        .header("x-forwarded-host", "sims.example.org")
        .header(ORIGIN, "https://sims.example.org");
    refresh_cookie_of(&proxied.expect_answer(StatusCode::OK).await);
    let proxied_login = app.anonymous(Method::POST, "/auth/login").json(&login_body);
    let proxied_login = proxied_login.header("x-forwarded-host", "sims.example.org");
    proxied_login
        .header(ORIGIN, "http://sims.example.org")
        .expect(StatusCode::OK)
        .await;

    // JSON mode needs no Origin on any route.
    let pair = app.login(ADMIN.0, ADMIN.1).await;
    let pair = app
        .refresh_request(&pair["refresh_token"])
        .expect(StatusCode::OK)
        .await;
    let logout = app.anonymous(Method::POST, "/auth/logout");
    let logout = logout.json(&json!({"refresh_token": pair["refresh_token"]}));
    logout.expect_answer(StatusCode::NO_CONTENT).await;
}

#[sqlx::test(migrator = "eventstore::MIGRATOR")]
async fn logout_revokes_the_whole_login_clears_the_cookie_and_can_be_repeated(pool: PgPool) {
    let app = CommandApi::start(pool).await;
    let (_, first) = login_cookie(&app, ADMIN.0, ADMIN.1).await;
    let second = refresh_by_cookie(&app, &first).await;
    let (_, other_login) = login_cookie(&app, ADMIN.0, ADMIN.1).await;

    assert_cleared(
        // A JSON `null` body is cookie mode, as no body is.
        &with_cookie(&app, "/auth/logout", &second)
            .json(&Value::Null)
            .expect_answer(StatusCode::NO_CONTENT)
            .await,
    );
    let after = with_cookie(&app, "/auth/refresh", &second);
    expect_error(after, StatusCode::UNAUTHORIZED, "INVALID_TOKEN").await;
    // Again, without a cookie, with garbage: still 204 and cleared.
    for request in [
        with_cookie(&app, "/auth/logout", &second),
        from_own_origin(&app, "/auth/logout"),
        with_cookie(&app, "/auth/logout", "not-a-token"),
    ] {
        assert_cleared(&request.expect_answer(StatusCode::NO_CONTENT).await);
    }
    // Another login is another family: untouched.
    with_cookie(&app, "/auth/refresh", &other_login)
        .expect(StatusCode::OK)
        .await;

    // JSON mode: the body's token's family is revoked.
    let pair = app.login(ADMIN.0, ADMIN.1).await;
    let logout = app.anonymous(Method::POST, "/auth/logout");
    let logout = logout.json(&json!({"refresh_token": pair["refresh_token"]}));
    logout.expect_answer(StatusCode::NO_CONTENT).await;
    let refresh = app.refresh_request(&pair["refresh_token"]);
    expect_error(refresh, StatusCode::UNAUTHORIZED, "INVALID_TOKEN").await;
}

#[sqlx::test(migrator = "eventstore::MIGRATOR")]
async fn me_names_the_user_or_the_api_key(pool: PgPool) {
    let (app, admin) = CommandApi::start_as_admin(pool).await;
    assert_eq!(
        me(&app, &admin).await,
        json!({"username": "admin", "role": "admin", "kind": "user"})
    );
    let viewer = app.token_for_role("viewer").await;
    assert_eq!(
        me(&app, &viewer).await,
        json!({"username": "viewer-user", "role": "viewer", "kind": "user"})
    );
    let key = app
        .post("/auth/api-keys", &admin)
        .json(&json!({"name": "fleet-bot", "role": "operator"}));
    let key = key.expect(StatusCode::CREATED).await;
    let with_key = app.anonymous(Method::GET, "/auth/me");
    let with_key = with_key.header("x-api-key", key["key"].as_str().unwrap());
    assert_eq!(
        with_key.expect(StatusCode::OK).await,
        json!({"username": "fleet-bot", "role": "operator", "kind": "api_key"})
    );
    let anonymous = app.anonymous(Method::GET, "/auth/me");
    expect_error(anonymous, StatusCode::UNAUTHORIZED, "UNAUTHENTICATED").await;
}

#[sqlx::test(migrator = "eventstore::MIGRATOR")]
async fn a_role_change_takes_effect_at_the_next_refresh_and_login(pool: PgPool) {
    let (app, admin) = CommandApi::start_as_admin(pool).await;
    let id = create_user(&app, &admin, "dana", "viewer").await;
    let pair = app.login("dana", PASSWORD).await;
    let sim = json!({"iccid": "8988303000123456789", "imsi": "901405100000001"});
    let register = |token: &str| app.post("/sims", token).json(&sim);
    let old_access = pair["access_token"].as_str().unwrap().to_owned();
    expect_error(register(&old_access), StatusCode::FORBIDDEN, "FORBIDDEN").await;

    let changed = change_user(&app, &admin, &id, json!({"role": "operator"}));
    let changed = changed.expect(StatusCode::OK).await;
    assert_eq!(
        (changed["id"].as_str(), &changed["role"]),
        (Some(id.as_str()), &json!("operator"))
    );
    assert_eq!(changed["disabled"], false);

    let refreshed = app
        .refresh_request(&pair["refresh_token"])
        .expect(StatusCode::OK)
        .await;
    let new_access = refreshed["access_token"].as_str().unwrap();
    assert_eq!(me(&app, new_access).await["role"], "operator");
    register(new_access).expect(StatusCode::CREATED).await;
    let login = app.login("dana", PASSWORD).await;
    assert_eq!(
        me(&app, login["access_token"].as_str().unwrap()).await["role"],
        "operator"
    );
    // The access token from before the change holds the stored role too (re-read by
    // authentication), not the one it was issued with.
    assert_eq!(me(&app, &old_access).await["role"], "operator");
}

#[sqlx::test(migrator = "eventstore::MIGRATOR")]
async fn a_disabled_user_cannot_log_in_refresh_or_use_an_access_token(pool: PgPool) {
    let (app, admin) = CommandApi::start_as_admin(pool.clone()).await;
    let id = create_user(&app, &admin, "erin", "operator").await;
    let pair = app.login("erin", PASSWORD).await;
    let (cookie_access, cookie_refresh) = login_cookie(&app, "erin", PASSWORD).await;
    let access = pair["access_token"].as_str().unwrap();
    me(&app, access).await;

    let disabled = change_user(&app, &admin, &id, json!({"disabled": true}))
        .expect(StatusCode::OK)
        .await;
    assert_eq!(disabled["disabled"], true);
    let live: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM refresh_tokens WHERE user_id = $1::uuid AND revoked_at IS NULL",
    )
    .bind(&id)
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(live, 0, "disabling revokes every refresh token of the user");

    expect_error(
        app.login_request("erin", PASSWORD),
        StatusCode::UNAUTHORIZED,
        "INVALID_CREDENTIALS",
    )
    .await;
    expect_error(
        cookie_login(&app, "erin", PASSWORD),
        StatusCode::UNAUTHORIZED,
        "INVALID_CREDENTIALS",
    )
    .await;
    let refresh = app.refresh_request(&pair["refresh_token"]);
    expect_error(refresh, StatusCode::UNAUTHORIZED, "INVALID_TOKEN").await;
    let refresh = with_cookie(&app, "/auth/refresh", &cookie_refresh);
    expect_error(refresh, StatusCode::UNAUTHORIZED, "INVALID_TOKEN").await;
    for token in [access, cookie_access.as_str()] {
        expect_error(
            app.get("/auth/me", token),
            StatusCode::UNAUTHORIZED,
            "ACCOUNT_DISABLED",
        )
        .await;
    }

    // Enabled again: a new login works, the old refresh tokens stay revoked.
    change_user(&app, &admin, &id, json!({"disabled": false}))
        .expect(StatusCode::OK)
        .await;
    let again = app.login("erin", PASSWORD).await;
    me(&app, again["access_token"].as_str().unwrap()).await;
    let old = app.refresh_request(&pair["refresh_token"]);
    expect_error(old, StatusCode::UNAUTHORIZED, "INVALID_TOKEN").await;
}

#[sqlx::test(migrator = "eventstore::MIGRATOR")]
async fn the_last_enabled_admin_cannot_be_demoted_or_disabled(pool: PgPool) {
    let (app, admin) = CommandApi::start_as_admin(pool.clone()).await;
    let users = app.get("/users", &admin).expect(StatusCode::OK).await;
    let admin_id = users[0]["id"].as_str().unwrap().to_owned();
    let last_admin = |change: Value| change_user(&app, &admin, &admin_id, change);
    for change in [
        json!({"role": "operator"}),
        json!({"disabled": true}),
        json!({"role": "viewer", "disabled": false}),
    ] {
        let error = expect_error(last_admin(change), StatusCode::CONFLICT, "LAST_ADMIN").await;
        assert!(error["message"].as_str().unwrap().contains("admin"));
    }
    // A disabled admin does not count.
    let second = create_user(&app, &admin, "second-admin", "admin").await;
    change_user(&app, &admin, &second, json!({"disabled": true}))
        .expect(StatusCode::OK)
        .await;
    expect_error(
        last_admin(json!({"role": "viewer"})),
        StatusCode::CONFLICT,
        "LAST_ADMIN",
    )
    .await;
    // Unchanged by a no-op or a change that keeps it an enabled admin.
    last_admin(json!({"role": "admin", "disabled": false}))
        .expect(StatusCode::OK)
        .await;
    last_admin(json!({})).expect(StatusCode::OK).await;

    // Two admins demoting each other at once: one wins, one admin remains.
    change_user(&app, &admin, &second, json!({"disabled": false}))
        .expect(StatusCode::OK)
        .await;
    let second_token = app.login("second-admin", PASSWORD).await["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let demote = |token: &str, id: &str| change_user(&app, token, id, json!({"role": "viewer"})).response();
    let (one, other) = tokio::join!(demote(&admin, &second), demote(&second_token, &admin_id));
    let statuses = [one.status(), other.status()];
    assert_eq!(
        statuses.iter().filter(|s| **s == StatusCode::OK).count(),
        1,
        "{statuses:?}"
    );
    let enabled_admins: i64 =
        sqlx::query_scalar("SELECT count(*) FROM users WHERE role = 'admin' AND NOT disabled")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(enabled_admins, 1);
}

#[sqlx::test(migrator = "eventstore::MIGRATOR")]
async fn only_admins_change_users_and_bad_changes_are_refused(pool: PgPool) {
    let (app, admin) = CommandApi::start_as_admin(pool).await;
    let target = create_user(&app, &admin, "frank", "viewer").await;
    for role in ["viewer", "operator"] {
        let token = app.token_for_role(role).await;
        let change = change_user(&app, &token, &target, json!({"role": "admin"}));
        let error = expect_error(change, StatusCode::FORBIDDEN, "FORBIDDEN").await;
        assert_eq!(error["details"]["required_role"], "admin");
    }
    let unknown = uuid::Uuid::now_v7().to_string();
    let unknown = change_user(&app, &admin, &unknown, json!({"disabled": true}));
    expect_error(unknown, StatusCode::NOT_FOUND, "USER_NOT_FOUND").await;
    for bad in [
        json!({"role": "root"}),
        json!({"disabled": "yes"}),
        json!({"password": "x"}),
        json!([]),
    ] {
        let change = change_user(&app, &admin, &target, bad);
        expect_error(change, StatusCode::UNPROCESSABLE_ENTITY, "INVALID_BODY").await;
    }
    let bad_id = change_user(&app, &admin, "not-a-uuid", json!({"disabled": true}));
    expect_error(bad_id, StatusCode::BAD_REQUEST, "INVALID_PATH").await;
    let users = app.get("/users", &admin).expect(StatusCode::OK).await;
    let frank = users
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["username"] == "frank")
        .unwrap();
    assert_eq!(
        (&frank["role"], &frank["disabled"]),
        (&json!("viewer"), &json!(false))
    );
}
