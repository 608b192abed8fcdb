//! The HTTP surface's hygiene: error shape and request ids on every answer, limits, and the
//! operations endpoints.

use crate::common::{error_body, iccid, CommandApi};
use reqwest::StatusCode;
use serde_json::json;
use sqlx::PgPool;

#[sqlx::test(migrator = "eventstore::MIGRATOR")]
async fn unknown_routes_and_methods_answer_in_the_error_shape(pool: PgPool) {
    let app = CommandApi::start(pool).await;
    let token = app.admin_token().await;
    let missing = app.get("/nothing-here", &token).send().await.unwrap();
    error_body(missing, StatusCode::NOT_FOUND, "NOT_FOUND").await;
    let wrong_method = app
        .client
        .put(app.api("/sims"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    error_body(wrong_method, StatusCode::METHOD_NOT_ALLOWED, "METHOD_NOT_ALLOWED").await;
}

#[sqlx::test(migrator = "eventstore::MIGRATOR")]
async fn bad_bodies_get_clear_errors_and_store_nothing(pool: PgPool) {
    let app = CommandApi::start_with(pool, |config| config.max_body_bytes = 1024).await;
    let token = app.admin_token().await;
    let malformed = app
        .post("/sims", &token)
        .header("content-type", "application/json")
        .body("{\"iccid\": ")
        .send()
        .await
        .unwrap();
    error_body(malformed, StatusCode::BAD_REQUEST, "MALFORMED_JSON").await;

    let unknown_field = app
        .post("/sims", &token)
        .json(&json!({"iccid": iccid(1), "imsi": "901405100000001", "colour": "red"}))
        .send()
        .await
        .unwrap();
    let error = error_body(unknown_field, StatusCode::UNPROCESSABLE_ENTITY, "INVALID_BODY").await;
    assert!(
        error["details"]["reason"].as_str().unwrap().contains("colour"),
        "{error}"
    );

    let missing_field = app
        .post("/sims", &token)
        .json(&json!({"iccid": iccid(1)}))
        .send()
        .await
        .unwrap();
    error_body(missing_field, StatusCode::UNPROCESSABLE_ENTITY, "INVALID_BODY").await;

    let no_content_type = app.post("/sims", &token).body("{}").send().await.unwrap();
    error_body(
        no_content_type,
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "UNSUPPORTED_MEDIA_TYPE",
    )
    .await;

    let huge = app
        .post("/sims", &token)
        .json(&json!({"iccid": iccid(1), "imsi": "901405100000001", "label": "x".repeat(4096)}))
        .send()
        .await
        .unwrap();
    error_body(huge, StatusCode::PAYLOAD_TOO_LARGE, "PAYLOAD_TOO_LARGE").await;
    assert_eq!(app.count_events("SimRegistered").await, 0);
}

#[sqlx::test(migrator = "eventstore::MIGRATOR")]
async fn a_client_request_id_is_echoed_and_one_is_made_otherwise(pool: PgPool) {
    let app = CommandApi::start(pool).await;
    let echoed = app
        .client
        .get(app.url("/health"))
        .header("x-request-id", "abc-123")
        .send()
        .await
        .unwrap();
    assert_eq!(echoed.headers()["x-request-id"], "abc-123");
    let made = app.client.get(app.url("/health")).send().await.unwrap();
    assert!(!made.headers()["x-request-id"].is_empty());
}

#[sqlx::test(migrator = "eventstore::MIGRATOR")]
async fn health_ready_and_metrics_answer(pool: PgPool) {
    let app = CommandApi::start(pool).await;
    let health = app.client.get(app.url("/health")).send().await.unwrap();
    assert_eq!(health.status(), StatusCode::OK);
    let ready = app.client.get(app.url("/ready")).send().await.unwrap();
    assert_eq!(ready.status(), StatusCode::OK);

    let token = app.admin_token().await;
    app.register_sim(&token, &iccid(1)).await;
    let metrics = app
        .client
        .get(app.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains(r#"http_requests_total{method="POST",route="/api/v1/sims",status="201"} 1"#),
        "{metrics}"
    );
    assert!(
        metrics.contains("http_request_duration_seconds_bucket"),
        "{metrics}"
    );
    assert!(
        metrics.contains(r#"commands_total{command="register",outcome="accepted"} 1"#),
        "{metrics}"
    );
}

#[sqlx::test(migrator = "eventstore::MIGRATOR")]
async fn ready_answers_503_when_postgres_is_gone(pool: PgPool) {
    let app = CommandApi::start(pool).await;
    app.state.pool.close().await;
    let ready = app.client.get(app.url("/ready")).send().await.unwrap();
    let error = error_body(ready, StatusCode::SERVICE_UNAVAILABLE, "NOT_READY").await;
    assert_eq!(error["details"]["dependency"], "postgres");
}

#[sqlx::test(migrator = "eventstore::MIGRATOR")]
async fn the_openapi_document_lists_every_route(pool: PgPool) {
    let app = CommandApi::start(pool).await;
    let response = app.client.get(app.url("/openapi.json")).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let document: serde_json::Value = response.json().await.unwrap();
    assert!(document["openapi"].as_str().unwrap().starts_with("3."));
    let paths = document["paths"].as_object().unwrap();
    let expected = [
        ("/api/v1/auth/login", "post"),
        ("/api/v1/auth/refresh", "post"),
        ("/api/v1/auth/api-keys", "post"),
        ("/api/v1/auth/api-keys", "get"),
        ("/api/v1/auth/api-keys/{id}", "delete"),
        ("/api/v1/users", "post"),
        ("/api/v1/users", "get"),
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
