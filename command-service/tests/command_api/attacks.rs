//! What a fuzzer does not try: credentials of the wrong kind or role on every route, headers
//! and bodies past every limit, JSON nested past the parser's, an ICCID in other scripts'
//! digits. Every answer is a 4xx in the error shape, and nothing is stored.

use crate::common::*;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use sqlx::PgPool;
use testkit::http::with_json;

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
        (Method::POST, format!("/sims/{iccid}/connectivity-reset"), None),
        (
            Method::PUT,
            format!("/sims/{iccid}/auto-topup"),
            Some(json!({"enabled": true})),
        ),
        (Method::PUT, "/limits".into(), Some(json!({"data_limit_id": 1}))),
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
        (
            Method::PATCH,
            format!("/users/{key}"),
            Some(json!({"role": "viewer", "disabled": true})),
        ),
    ]
}

/// What the attacks must not have changed: events, users, API keys, idempotency records.
async fn stored(app: &CommandApi) -> Vec<i64> {
    app.count_rows(&["events", "users", "api_keys", "command_idempotency"])
        .await
}

#[sqlx::test(migrator = "eventstore::MIGRATOR")]
async fn a_viewer_key_and_a_refresh_token_are_refused_on_every_command_route(pool: PgPool) {
    let (app, admin) = CommandApi::start_as_admin(pool).await;
    let iccid = iccid(1);
    app.register_sim(&admin, &iccid).await;
    let new_key = app
        .post("/auth/api-keys", &admin)
        .json(&json!({"name": "dashboard", "role": "viewer"}));
    let viewer_key = new_key.expect(StatusCode::CREATED).await["key"]
        .as_str()
        .unwrap()
        .to_owned();
    let refresh = app.login(ADMIN.0, ADMIN.1).await["refresh_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let before = stored(&app).await;

    for (method, path, body) in command_routes(&iccid) {
        let as_viewer = app
            .anonymous(method.clone(), &path)
            .header("x-api-key", &viewer_key);
        let as_refresh = app.request(method.clone(), &path, &refresh);
        let as_viewer = with_json(as_viewer, body.as_ref());
        expect_error(as_viewer, StatusCode::FORBIDDEN, "FORBIDDEN").await;
        let response = with_json(as_refresh, body.as_ref()).response().await;
        assert_eq!(
            response.status(),
            StatusCode::UNAUTHORIZED,
            "{method} {path} with a refresh token"
        );
        let code = error_body(response, StatusCode::UNAUTHORIZED, "INVALID_TOKEN").await;
        assert!(code["message"].as_str().is_some());
    }
    // And the other way round: an access token is no refresh token.
    let response = app.refresh_request(&json!(admin)).response().await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(stored(&app).await, before, "nothing stored");
}

#[sqlx::test(migrator = "eventstore::MIGRATOR")]
async fn oversized_and_malformed_requests_get_4xx_in_the_error_shape(pool: PgPool) {
    let (app, admin) = CommandApi::start_as_admin(pool).await;
    let before = stored(&app).await;
    let register = |iccid: String| json!({"iccid": iccid, "imsi": "901405100000001"});
    let sims = || app.post("/sims", &admin);
    let mut big = register(iccid(5));
    big["label"] = json!("l".repeat(200 * 1024));
    let nested = format!(
        r#"{{"iccid": "{}", "imsi": "901405100000001", "extra": {}{}}}"#,
        iccid(6),
        "[".repeat(10_000),
        "]".repeat(10_000)
    );
    let mut nul = register(iccid(7));
    nul["label"] = json!("a\u{0}b");
    let headers_too_large = (
        StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
        "REQUEST_HEADERS_TOO_LARGE",
    );
    // The request, the status and code it is refused with, and a word the reason names.
    let cases = [
        // Headers past the limits: in all, and one alone.
        (
            sims()
                .header("x-padding", "p".repeat(40 * 1024))
                .json(&register(iccid(2))),
            headers_too_large,
            None,
        ),
        (
            sims()
                .header("idempotency-key", "k".repeat(10 * 1024))
                .json(&register(iccid(3))),
            headers_too_large,
            None,
        ),
        // Within the header limits, still too long for an idempotency key.
        (
            sims()
                .header("idempotency-key", "k".repeat(1024))
                .json(&register(iccid(4))),
            (StatusCode::BAD_REQUEST, "INVALID_IDEMPOTENCY_KEY"),
            None,
        ),
        // A body past the limit, and JSON nested deeper than the parser follows.
        (
            sims().json(&big),
            (StatusCode::PAYLOAD_TOO_LARGE, "PAYLOAD_TOO_LARGE"),
            None,
        ),
        (
            sims().header("content-type", "application/json").body(nested),
            (StatusCode::BAD_REQUEST, "MALFORMED_JSON"),
            Some("recursion limit"),
        ),
        // NUL characters, which nothing the platform stores can hold.
        (
            sims().json(&nul),
            (StatusCode::UNPROCESSABLE_ENTITY, "INVALID_BODY"),
            Some("label"),
        ),
    ];
    expect_refusals(cases).await;

    // An ICCID of other scripts' digits: Arabic-Indic, full-width, in the body and the path.
    for foreign in ["٨٩٨٨٣٠٣٠٠٠٠٠٠٠٠٠٠٠١", "８９８８３０３０００００００００００１"]
    {
        let activate = app.post(&format!("/sims/{foreign}/activate"), &admin);
        for request in [sims().json(&register(foreign.to_owned())), activate] {
            expect_error(request, StatusCode::UNPROCESSABLE_ENTITY, "INVALID_ICCID").await;
        }
    }
    // Not JSON at all, and JSON of the wrong type.
    let not_json = sims()
        .header("content-type", "application/json")
        .body("{\"iccid\": ");
    assert!(not_json.response().await.status().is_client_error());
    let array = sims().json(&json!([1, 2, 3]));
    expect_error(array, StatusCode::UNPROCESSABLE_ENTITY, "INVALID_BODY").await;
    assert_eq!(stored(&app).await, before, "nothing stored");
}
