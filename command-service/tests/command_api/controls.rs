//! Provider controls: connectivity reset, auto top-up and the account's limits, recorded as
//! intents (the connector's side is tested in the sync connector's `provider_controls`).

use crate::common::{expect_error, iccid, CommandApi, Exchange};
use domain::sim::{ProviderStatus, Sim, SimCommand};
use eventstore::{CommandContext, EventMetadata};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use sqlx::PgPool;

async fn make_active(app: &CommandApi, iccid: &str) {
    let ctx = CommandContext::new(EventMetadata::new("connector:test"));
    let command = SimCommand::RecordProviderStatus {
        status: ProviderStatus::Enabled,
        at: chrono::Utc::now(),
    };
    app.state
        .store
        .execute::<Sim>(iccid, iccid, command, &ctx)
        .await
        .unwrap();
}

#[sqlx::test(migrator = "eventstore::MIGRATOR")]
async fn a_connectivity_reset_is_requested_once_per_key_for_an_active_sim(pool: PgPool) {
    let (app, token) = CommandApi::start_as_admin(pool.clone()).await;
    let sim = iccid(1);
    app.register_sim(&token, &sim).await;
    let path = format!("/sims/{sim}/connectivity-reset");
    // Not active yet: refused.
    expect_error(app.post(&path, &token), StatusCode::CONFLICT, "SIM_NOT_ACTIVE").await;
    make_active(&app, &sim).await;
    let reset = || app.post(&path, &token).header("idempotency-key", "reset-1");
    let first = reset().expect_answer(StatusCode::ACCEPTED).await;
    let again = reset().expect_answer(StatusCode::ACCEPTED).await;
    assert_eq!(again.header("idempotent-replayed"), "true");
    assert_eq!(again.body, first.body);
    assert_eq!(app.count_events("ConnectivityResetRequested").await, 1);
    let request_id: String = sqlx::query_scalar(
        "SELECT payload->>'request_id' FROM events WHERE event_type = 'ConnectivityResetRequested'",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(request_id, first.body["command_id"].as_str().unwrap());
    // Another reset while this one is on its way: refused.
    expect_error(app.post(&path, &token), StatusCode::CONFLICT, "CHANGE_PENDING").await;
    let unknown = app.post(&format!("/sims/{}/connectivity-reset", iccid(9)), &token);
    expect_error(unknown, StatusCode::NOT_FOUND, "SIM_NOT_FOUND").await;
    let bad = app.post("/sims/123/connectivity-reset", &token);
    let body = bad.response().await;
    assert_eq!(body.status(), StatusCode::UNPROCESSABLE_ENTITY);
}

#[sqlx::test(migrator = "eventstore::MIGRATOR")]
async fn auto_top_up_is_requested_and_the_same_setting_again_records_nothing(pool: PgPool) {
    let (app, token) = CommandApi::start_as_admin(pool).await;
    let sim = iccid(2);
    app.register_sim(&token, &sim).await;
    let path = format!("/sims/{sim}/auto-topup");
    let set = |enabled: Value| {
        app.request(Method::PUT, &path, &token)
            .json(&json!({ "enabled": enabled }))
    };
    set(json!(true)).expect_answer(StatusCode::ACCEPTED).await;
    set(json!(true)).expect_answer(StatusCode::ACCEPTED).await;
    assert_eq!(app.count_events("AutoTopUpChangeRequested").await, 1);
    // The other value supersedes the pending one.
    set(json!(false)).expect_answer(StatusCode::ACCEPTED).await;
    assert_eq!(app.count_events("AutoTopUpChangeRequested").await, 2);
    expect_error(
        set(json!("yes")),
        StatusCode::UNPROCESSABLE_ENTITY,
        "INVALID_BODY",
    )
    .await;
    let extra = app
        .request(Method::PUT, &path, &token)
        .json(&json!({"enabled": true, "also": 1}));
    expect_error(extra, StatusCode::UNPROCESSABLE_ENTITY, "INVALID_BODY").await;
}

#[sqlx::test(migrator = "eventstore::MIGRATOR")]
async fn limits_are_changed_one_request_at_a_time_and_shown(pool: PgPool) {
    let (app, token) = CommandApi::start_as_admin(pool.clone()).await;
    let view: Value = app.get("/limits", &token).expect(StatusCode::OK).await;
    assert_eq!(view["last_change"], Value::Null);
    assert_eq!(view["version"], 0);
    let change = |body: Value| app.request(Method::PUT, "/limits", &token).json(&body);
    expect_error(
        change(json!({})),
        StatusCode::UNPROCESSABLE_ENTITY,
        "INVALID_LIMITS",
    )
    .await;
    let accepted = change(json!({"data_limit_id": 2, "sms_mt_limit_id": 1}))
        .expect_answer(StatusCode::ACCEPTED)
        .await;
    assert_eq!(accepted.body["aggregate_id"], "account");
    assert_eq!(accepted.header("location"), "/api/v1/limits");
    expect_error(
        change(json!({"data_limit_id": 3})),
        StatusCode::CONFLICT,
        "CHANGE_PENDING",
    )
    .await;
    expect_error(
        change(json!({"data_limit_id": -1})),
        StatusCode::UNPROCESSABLE_ENTITY,
        "INVALID_BODY",
    )
    .await;
    let view: Value = app.get("/limits", &token).expect(StatusCode::OK).await;
    assert_eq!(view["last_change"]["state"], "pending", "{view}");
    assert_eq!(view["last_change"]["limits"]["data_limit_id"], 2);
    assert_eq!(view["confirmed"], json!({}));
    let (token_column, aggregate_type): (String, String) = sqlx::query_as(
        "SELECT iccid, aggregate_type FROM events WHERE event_type = 'AccountLimitsChangeRequested'",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(
        (token_column.as_str(), aggregate_type.as_str()),
        ("account", "account_limits")
    );
}
