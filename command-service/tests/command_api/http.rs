//! The HTTP surface's hygiene: error shape and request ids on every answer, limits, and the
//! operations endpoints.

use crate::common::{expect_error, expect_refusals, iccid, CommandApi, Exchange};
use reqwest::{Method, StatusCode};
use serde_json::json;
use sqlx::PgPool;

#[sqlx::test(migrator = "eventstore::MIGRATOR")]
async fn unknown_routes_and_methods_answer_in_the_error_shape(pool: PgPool) {
    let (app, token) = CommandApi::start_as_admin(pool).await;
    for (method, path, status, code) in [
        (Method::GET, "/nothing-here", StatusCode::NOT_FOUND, "NOT_FOUND"),
        (
            Method::PUT,
            "/sims",
            StatusCode::METHOD_NOT_ALLOWED,
            "METHOD_NOT_ALLOWED",
        ),
    ] {
        expect_error(app.request(method, path, &token), status, code).await;
    }
}

#[sqlx::test(migrator = "eventstore::MIGRATOR")]
async fn bad_bodies_get_clear_errors_and_store_nothing(pool: PgPool) {
    let app = CommandApi::start_with(pool, |config| config.max_body_bytes = 1024).await;
    let token = app.admin_token().await;
    let register = || app.post("/sims", &token);
    let unknown_field = json!({"iccid": iccid(1), "imsi": "901405100000001", "colour": "red"});
    let huge = json!({"iccid": iccid(1), "imsi": "901405100000001", "label": "x".repeat(4096)});
    // The request, the status and code it is refused with, and a word the reason names.
    let cases = [
        (
            register()
                .header("content-type", "application/json")
                .body("{\"iccid\": "),
            (StatusCode::BAD_REQUEST, "MALFORMED_JSON"),
            None,
        ),
        (
            register().json(&unknown_field),
            (StatusCode::UNPROCESSABLE_ENTITY, "INVALID_BODY"),
            Some("colour"),
        ),
        (
            register().json(&json!({"iccid": iccid(1)})),
            (StatusCode::UNPROCESSABLE_ENTITY, "INVALID_BODY"),
            None,
        ),
        (
            register().body("{}"),
            (StatusCode::UNSUPPORTED_MEDIA_TYPE, "UNSUPPORTED_MEDIA_TYPE"),
            None,
        ),
        (
            register().json(&huge),
            (StatusCode::PAYLOAD_TOO_LARGE, "PAYLOAD_TOO_LARGE"),
            None,
        ),
    ];
    expect_refusals(cases).await;
    assert_eq!(app.count_events("SimRegistered").await, 0);
}

#[sqlx::test(migrator = "eventstore::MIGRATOR")]
async fn a_client_request_id_is_echoed_and_one_is_made_otherwise(pool: PgPool) {
    let app = CommandApi::start(pool).await;
    let health = || app.client.get(app.url("/health"));
    let echoed = health().header("x-request-id", "abc-123").response().await;
    assert_eq!(echoed.headers()["x-request-id"], "abc-123");
    let made = health().response().await;
    assert!(!made.headers()["x-request-id"].is_empty());
}

#[sqlx::test(migrator = "eventstore::MIGRATOR")]
async fn health_ready_and_metrics_answer(pool: PgPool) {
    let app = CommandApi::start(pool).await;
    for path in ["/health", "/ready"] {
        let answer = app.client.get(app.url(path)).response().await;
        assert_eq!(answer.status(), StatusCode::OK, "{path}");
    }

    // Before any command: every command's series at 0; ready as of the scrape.
    let metrics = app.metrics().await;
    for line in [
        r#"commands_total{command="topup",outcome="accepted"} 0"#,
        r#"commands_total{command="register",outcome="refused"} 0"#,
        "service_ready 1",
    ] {
        assert!(metrics.contains(line), "{line} in {metrics}");
    }
    let token = app.admin_token().await;
    app.register_sim(&token, &iccid(1)).await;
    let metrics = app.metrics().await;
    for line in [
        r#"http_requests_total{method="POST",route="/api/v1/sims",status="201"} 1"#,
        "http_request_duration_seconds_bucket",
        r#"commands_total{command="register",outcome="accepted"} 1"#,
    ] {
        assert!(metrics.contains(line), "{metrics}");
    }
}

#[sqlx::test(migrator = "eventstore::MIGRATOR")]
async fn ready_answers_503_when_postgres_is_gone(pool: PgPool) {
    let app = CommandApi::start(pool).await;
    app.state.pool.close().await;
    let ready = app.client.get(app.url("/ready"));
    let error = expect_error(ready, StatusCode::SERVICE_UNAVAILABLE, "NOT_READY").await;
    assert_eq!(error["details"]["dependency"], "postgres");
}

#[sqlx::test(migrator = "eventstore::MIGRATOR")]
async fn the_openapi_document_lists_every_route(pool: PgPool) {
    let app = CommandApi::start(pool).await;
    let document = app
        .client
        .get(app.url("/openapi.json"))
        .expect(StatusCode::OK)
        .await;
    assert!(document["openapi"].as_str().unwrap().starts_with("3."));
    let paths = document["paths"].as_object().unwrap();
    let expected = [
        ("/api/v1/auth/login", "post"),
        ("/api/v1/auth/refresh", "post"),
        ("/api/v1/auth/logout", "post"),
        ("/api/v1/auth/me", "get"),
        ("/api/v1/auth/api-keys", "post"),
        ("/api/v1/auth/api-keys", "get"),
        ("/api/v1/auth/api-keys/{id}", "delete"),
        ("/api/v1/users", "post"),
        ("/api/v1/users", "get"),
        ("/api/v1/users/{id}", "patch"),
        ("/api/v1/sims", "post"),
        ("/api/v1/sims/{iccid}", "patch"),
        ("/api/v1/sims/{iccid}", "delete"),
        ("/api/v1/sims/{iccid}/activate", "post"),
        ("/api/v1/sims/{iccid}/suspend", "post"),
        ("/api/v1/sims/{iccid}/topup", "post"),
        ("/api/v1/sims/{iccid}/sms", "post"),
    ];
    for (path, method) in expected {
        assert!(
            paths.get(path).and_then(|p| p.get(method)).is_some(),
            "{method} {path} undocumented"
        );
    }
    assert!(document["components"]["schemas"]["RegisterSim"].is_object());
    assert!(document["components"]["securitySchemes"]["bearer"].is_object());
}
