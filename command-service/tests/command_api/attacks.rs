//! What a fuzzer does not try: credentials of the wrong kind or role on every route, headers
//! and bodies past every limit, JSON nested past the parser's, an ICCID in other scripts'
//! digits. Every answer is a 4xx in the error shape, and nothing is stored.

use crate::common::*;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use sqlx::PgPool;

/// Every route that changes something, with a body it would accept from an admin.
fn command_routes(iccid: &str) -> Vec<(Method, String, Option<Value>)> {
    let key = "00000000-0000-0000-0000-000000000001";
    vec![
        (
            Method::POST,
            "/sims".into(),
            Some(json!({"iccid": iccid, "imsi": "901405100000001"})),
        ),
        (
            Method::PATCH,
            format!("/sims/{iccid}"),
            Some(json!({"label": "x"})),
        ),
        (Method::POST, format!("/sims/{iccid}/activate"), None),
        (Method::POST, format!("/sims/{iccid}/suspend"), None),
        (Method::DELETE, format!("/sims/{iccid}"), None),
        (Method::POST, format!("/sims/{iccid}/topup"), Some(json!({}))),
        (
            Method::POST,
            format!("/sims/{iccid}/sms"),
            Some(json!({"payload": "hi"})),
        ),
        (Method::POST, format!("/sims/{iccid}/sync"), None),
        (Method::POST, "/sims/sync-all".into(), None),
        (
            Method::POST,
            "/users".into(),
            Some(json!({"username": "eve", "password": "correct-horse-battery", "role": "admin"})),
        ),
        (
            Method::POST,
            "/auth/api-keys".into(),
            Some(json!({"name": "eve", "role": "admin"})),
        ),
        (Method::DELETE, format!("/auth/api-keys/{key}"), None),
    ]
}

/// What the attacks must not have changed: events, users, API keys, idempotency records.
async fn stored(pool: &PgPool) -> (i64, i64, i64, i64) {
    sqlx::query_as(
        "SELECT (SELECT count(*) FROM events), (SELECT count(*) FROM users), \
         (SELECT count(*) FROM api_keys), (SELECT count(*) FROM command_idempotency)",
    )
    .fetch_one(pool)
    .await
    .unwrap()
}

#[sqlx::test(migrator = "eventstore::MIGRATOR")]
async fn a_viewer_key_and_a_refresh_token_are_refused_on_every_command_route(pool: PgPool) {
    let app = CommandApi::start(pool.clone()).await;
    let admin = app.admin_token().await;
    let iccid = iccid(1);
    app.register_sim(&admin, &iccid).await;
    let created = app
        .post("/auth/api-keys", &admin)
        .json(&json!({"name": "dashboard", "role": "viewer"}))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), StatusCode::CREATED);
    let viewer_key = created.json::<Value>().await.unwrap()["key"]
        .as_str()
        .unwrap()
        .to_owned();
    let refresh = app.login(ADMIN.0, ADMIN.1).await["refresh_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let before = stored(&pool).await;

    for (method, path, body) in command_routes(&iccid) {
        let mut as_viewer = app
            .client
            .request(method.clone(), app.api(&path))
            .header("x-api-key", &viewer_key);
        let mut as_refresh = app
            .client
            .request(method.clone(), app.api(&path))
            .bearer_auth(&refresh);
        if let Some(body) = &body {
            as_viewer = as_viewer.json(body);
            as_refresh = as_refresh.json(body);
        }
        let response = as_viewer.send().await.unwrap();
        error_body(response, StatusCode::FORBIDDEN, "FORBIDDEN").await;
        let response = as_refresh.send().await.unwrap();
        assert_eq!(
            response.status(),
            StatusCode::UNAUTHORIZED,
            "{method} {path} with a refresh token"
        );
        let code = error_body(response, StatusCode::UNAUTHORIZED, "INVALID_TOKEN").await;
        assert!(code["message"].as_str().is_some());
    }
    // And the other way round: an access token is no refresh token.
    let response = app
        .client
        .post(app.api("/auth/refresh"))
        .json(&json!({"refresh_token": admin}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(stored(&pool).await, before, "nothing stored");
}

#[sqlx::test(migrator = "eventstore::MIGRATOR")]
async fn oversized_and_malformed_requests_get_4xx_in_the_error_shape(pool: PgPool) {
    let app = CommandApi::start(pool.clone()).await;
    let admin = app.admin_token().await;
    let before = stored(&pool).await;
    let register = |iccid: String| json!({"iccid": iccid, "imsi": "901405100000001"});

    // Headers past the limits: in all, and one alone.
    let response = app
        .post("/sims", &admin)
        .header("x-padding", "p".repeat(40 * 1024))
        .json(&register(iccid(2)))
        .send()
        .await
        .unwrap();
    error_body(
        response,
        StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
        "REQUEST_HEADERS_TOO_LARGE",
    )
    .await;
    let response = app
        .post("/sims", &admin)
        .header("idempotency-key", "k".repeat(10 * 1024))
        .json(&register(iccid(3)))
        .send()
        .await
        .unwrap();
    error_body(
        response,
        StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
        "REQUEST_HEADERS_TOO_LARGE",
    )
    .await;
    // Within the header limits, still too long for an idempotency key.
    let response = app
        .post("/sims", &admin)
        .header("idempotency-key", "k".repeat(1024))
        .json(&register(iccid(4)))
        .send()
        .await
        .unwrap();
    error_body(response, StatusCode::BAD_REQUEST, "INVALID_IDEMPOTENCY_KEY").await;

    // A body past the limit, and JSON nested deeper than the parser follows.
    let mut big = register(iccid(5));
    big["label"] = json!("l".repeat(200 * 1024));
    let response = app.post("/sims", &admin).json(&big).send().await.unwrap();
    error_body(response, StatusCode::PAYLOAD_TOO_LARGE, "PAYLOAD_TOO_LARGE").await;
    let nested = format!(
        r#"{{"iccid": "{}", "imsi": "901405100000001", "extra": {}{}}}"#,
        iccid(6),
        "[".repeat(10_000),
        "]".repeat(10_000)
    );
    let response = app
        .post("/sims", &admin)
        .header("content-type", "application/json")
        .body(nested)
        .send()
        .await
        .unwrap();
    let error = error_body(response, StatusCode::BAD_REQUEST, "MALFORMED_JSON").await;
    assert!(error["details"]["reason"]
        .as_str()
        .unwrap()
        .contains("recursion limit"));
    // NUL characters, which nothing the platform stores can hold.
    let mut nul = register(iccid(7));
    nul["label"] = json!("a\u{0}b");
    let response = app.post("/sims", &admin).json(&nul).send().await.unwrap();
    let error = error_body(response, StatusCode::UNPROCESSABLE_ENTITY, "INVALID_BODY").await;
    assert!(
        error["details"]["reason"].as_str().unwrap().contains("label"),
        "{error}"
    );

    // An ICCID of other scripts' digits: Arabic-Indic, full-width, in the body and the path.
    for foreign in ["٨٩٨٨٣٠٣٠٠٠٠٠٠٠٠٠٠٠١", "８９８８３０３０００００００００００１"]
    {
        let response = app
            .post("/sims", &admin)
            .json(&register(foreign.to_owned()))
            .send()
            .await
            .unwrap();
        error_body(response, StatusCode::UNPROCESSABLE_ENTITY, "INVALID_ICCID").await;
        let response = app
            .post(&format!("/sims/{foreign}/activate"), &admin)
            .send()
            .await
            .unwrap();
        error_body(response, StatusCode::UNPROCESSABLE_ENTITY, "INVALID_ICCID").await;
    }
    // Not JSON at all, and JSON of the wrong type.
    let response = app
        .post("/sims", &admin)
        .header("content-type", "application/json")
        .body("{\"iccid\": ")
        .send()
        .await
        .unwrap();
    assert!(response.status().is_client_error());
    let response = app
        .post("/sims", &admin)
        .json(&json!([1, 2, 3]))
        .send()
        .await
        .unwrap();
    error_body(response, StatusCode::UNPROCESSABLE_ENTITY, "INVALID_BODY").await;
    assert_eq!(stored(&pool).await, before, "nothing stored");
}
