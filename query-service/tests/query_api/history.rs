//! The event-store routes (history, state as of, feed) and consistency tokens.

use std::time::{Duration, Instant};

use domain::SimStatus;

use crate::common::*;
use chrono::{DateTime, Utc};
use readmodel::SimView;
use reqwest::StatusCode;
use serde_json::{json, Value};
use sqlx::PgPool;

async fn recorded_at(pool: &PgPool, position: i64) -> DateTime<Utc> {
    sqlx::query_scalar("SELECT recorded_at FROM events WHERE position = $1")
        .bind(position)
        .fetch_one(pool)
        .await
        .unwrap()
}

/// Every position in the global log's order.
async fn global_order(pool: &PgPool) -> Vec<i64> {
    sqlx::query_scalar("SELECT position FROM events ORDER BY transaction_id, position")
        .fetch_all(pool)
        .await
        .unwrap()
}

fn count(body: &Value) -> usize {
    body["events"].as_array().map_or(0, Vec::len)
}

/// GETs `path` until `done` (up to 5 s): the global log serves an event only once no older
/// transaction is in flight anywhere in the cluster (other tests' databases included).
async fn get_until(app: &QueryApi, path: &str, done: impl Fn(&Value) -> bool) -> Value {
    for _ in 0..100 {
        let body = app.get_json(path).await;
        if done(&body) {
            return body;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("GET {path} never satisfied the test");
}

fn positions(events: &Value) -> Vec<i64> {
    events
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["position"].as_i64().unwrap())
        .collect()
}

#[sqlx::test(migrator = "eventstore::MIGRATOR")]
async fn history_pages_oldest_first_with_metadata(pool: PgPool) {
    let app = QueryApi::start(pool.clone()).await;
    let store = app.store();
    let sim = iccid(1);
    register(&store, &sim, "pump", Utc::now()).await;
    register(&store, &iccid(2), "other", Utc::now()).await;
    provider_enabled(&store, &sim, Utc::now()).await;
    assign_data_quota(&store, &sim, 1000, 1000).await;
    let mine: Vec<i64> =
        sqlx::query_scalar("SELECT position FROM events WHERE iccid = $1 ORDER BY transaction_id, position")
            .bind(&sim)
            .fetch_all(&pool)
            .await
            .unwrap();
    assert_eq!(mine.len(), 3);

    let first = get_until(&app, &format!("/sims/{sim}/events?limit=2"), |b| count(b) == 2).await;
    assert_eq!(first["iccid"], sim);
    assert_eq!(positions(&first["events"]), mine[..2].to_vec());
    assert_eq!(first["next_after"], mine[1]);
    let registered = &first["events"][0];
    assert_eq!(registered["event_type"], "SimRegistered");
    assert_eq!(registered["aggregate_type"], "sim");
    assert_eq!(registered["sequence"], 1);
    assert_eq!(registered["payload"]["label"], "pump");
    let metadata = &registered["metadata"];
    assert_eq!(metadata["actor"], "user:op");
    assert_eq!(metadata["request_id"], "req-register");
    for field in ["command_id", "correlation_id", "causation_id", "occurred_at"] {
        assert!(metadata[field].is_string(), "{field}: {metadata}");
    }
    assert_eq!(first["events"][1]["metadata"]["actor"], "connector:sync");

    let path = format!("/sims/{sim}/events?after_position={}&limit=2", mine[1]);
    let second = get_until(&app, &path, |b| count(b) == 1).await;
    assert_eq!(second["events"][0]["event_type"], "QuotaAssigned");
    assert_eq!(second["events"][0]["aggregate_id"], format!("{sim}:data"));
    assert_eq!(second["next_after"], mine[2]);
    let last = app
        .get_json(&format!("/sims/{sim}/events?after_position={}", mine[2]))
        .await;
    assert_eq!(last["events"], json!([]));
    assert_eq!(last["next_after"], mine[2]);

    let unknown_sim = app.get(&format!("/sims/{}/events", iccid(3)));
    expect_error(unknown_sim, StatusCode::NOT_FOUND, "SIM_NOT_FOUND").await;
    let unknown_position = app.get(&format!("/sims/{sim}/events?after_position=999999"));
    expect_error(unknown_position, StatusCode::BAD_REQUEST, "UNKNOWN_POSITION").await;
    let bad = ["limit=0", "limit=1001", "after_position=-1", "after_position=x"];
    expect_invalid_queries(&app, bad.map(|bad| format!("/sims/{sim}/events?{bad}"))).await;
}

#[sqlx::test(migrator = "eventstore::MIGRATOR")]
async fn state_as_of_replays_the_history(pool: PgPool) {
    let app = QueryApi::start(pool.clone()).await;
    let store = app.store();
    let sim = iccid(1);
    let registered_at = "2026-01-05T08:00:00Z".parse::<DateTime<Utc>>().unwrap();
    let p1 = register(&store, &sim, "pump", registered_at).await;
    tokio::time::sleep(Duration::from_millis(20)).await;
    let p2 = provider_enabled(&store, &sim, Utc::now()).await;
    let p3 = assign_data_quota(&store, &sim, 5000, 4000).await;
    let (t1, t2, t3) = (
        recorded_at(&pool, p1).await,
        recorded_at(&pool, p2).await,
        recorded_at(&pool, p3).await,
    );
    assert!(t1 < t2);

    let state_as_of = |at: DateTime<Utc>| {
        app.get(&format!("/sims/{sim}/state"))
            .query(&[("as_of", at.to_rfc3339())])
    };
    let before = t1 - chrono::Duration::milliseconds(1);
    expect_error(state_as_of(before), StatusCode::NOT_FOUND, "SIM_NOT_FOUND").await;

    let between = t1 + (t2 - t1) / 2;
    let then = state_as_of(between).expect(StatusCode::OK).await;
    assert_eq!(then["status"], "inactive");
    assert_eq!(then["provider_status"], Value::Null);
    assert_eq!(then["data_total"], Value::Null);
    assert_eq!(then["version"], 1);
    assert_eq!(then["last_position"], p1);

    let at_t2 = state_as_of(t2).answer().await.body;
    assert_eq!(at_t2["status"], "active", "{at_t2}");
    assert_eq!(at_t2["data_total"], Value::Null);

    // What the projectors would have written by now.
    let expected = SimView {
        label: Some("pump".into()),
        tags: vec!["site:a".into()],
        status: SimStatus::Active,
        provider_status: Some("Enabled".into()),
        data_total: Some(5000),
        data_remaining: Some(4000),
        data_expiry: Some(ts("2026-12-31T00:00:00Z")),
        version: 2,
        last_position: p3,
        updated_at: t3,
        ..SimView::registered(sim.clone(), "901405100000001", registered_at)
    };
    insert_sim(&pool, &expected).await;
    let now = app.get_json(&format!("/sims/{sim}/state")).await;
    let row = app.get_json(&format!("/sims/{sim}")).await;
    assert_eq!(now, row);
    assert_eq!(now, serde_json::to_value(&expected).unwrap());

    let bad = ["as_of=yesterday", "as_of=2026-13-01T00:00:00Z", "when=now"];
    expect_invalid_queries(&app, bad.map(|bad| format!("/sims/{sim}/state?{bad}"))).await;
    let unknown_sim = app.get(&format!("/sims/{}/state", iccid(2)));
    expect_error(unknown_sim, StatusCode::NOT_FOUND, "SIM_NOT_FOUND").await;
}

#[sqlx::test(migrator = "eventstore::MIGRATOR")]
async fn feed_serves_the_global_order(pool: PgPool) {
    let app = QueryApi::start(pool.clone()).await;
    let store = app.store();
    for n in 1..=4 {
        register(&store, &iccid(n), "x", Utc::now()).await;
        provider_enabled(&store, &iccid(n), Utc::now()).await;
    }
    let order = global_order(&pool).await;
    assert_eq!(order.len(), 8);

    let page = get_until(&app, "/events?limit=3", |b| count(b) == 3).await;
    assert_eq!(positions(&page["events"]), order[..3].to_vec());
    assert_eq!(page["next_after"], order[2]);
    assert!(page["events"][0]["metadata"]["command_id"].is_string());

    let mut rest = Vec::new();
    let mut after = order[2];
    for _ in 0..100 {
        let body = app.get_json(&format!("/events?after={after}")).await;
        rest.extend(positions(&body["events"]));
        after = body["next_after"].as_i64().unwrap();
        if rest.len() >= 5 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(rest, order[3..].to_vec());
    let end = app.get_json(&format!("/events?after={}", order[7])).await;
    assert_eq!(end, json!({"events": [], "next_after": order[7]}));
    let all = app.get_json("/events").await;
    assert_eq!(positions(&all["events"]), order);

    let unknown_position = app.get("/events?after=999999");
    let error = expect_error(unknown_position, StatusCode::BAD_REQUEST, "UNKNOWN_POSITION").await;
    assert_eq!(error["details"]["position"], 999999);
    let bad = ["limit=0", "limit=1001", "after=-5", "after=abc"];
    expect_invalid_queries(&app, bad.map(|bad| format!("/events?{bad}"))).await;
    assert_eq!(
        app.get("/events?limit=1000").response().await.status(),
        StatusCode::OK
    );
}

async fn set_checkpoint(pool: &PgPool, projector: &str, position: i64) {
    sqlx::query(
        "INSERT INTO projection_checkpoints (projector, transaction_id, position, stream_sequence) \
         SELECT $1, transaction_id, position, 1 FROM events WHERE position = $2 \
         ON CONFLICT (projector) DO UPDATE SET transaction_id = excluded.transaction_id, \
         position = excluded.position, updated_at = now()",
    )
    .bind(projector)
    .bind(position)
    .execute(pool)
    .await
    .unwrap();
}

#[sqlx::test(migrator = "eventstore::MIGRATOR")]
async fn consistency_tokens_wait_for_the_read_models(pool: PgPool) {
    let app = QueryApi::start_with(pool.clone(), |config| {
        config.consistency_wait = Duration::from_millis(2000);
    })
    .await;
    let store = app.store();
    let sim = iccid(1);
    let p1 = register(&store, &sim, "pump", Utc::now()).await;
    let p2 = provider_enabled(&store, &sim, Utc::now()).await;
    set_checkpoint(&pool, "read-models", p1).await;
    let mut row = sim_row(1);
    row.status = SimStatus::Active;
    row.last_position = p2;
    insert_sim(&pool, &row).await;
    // A stale entry in Redis: a query with a token must not be answered from it.
    let mut stale = row.clone();
    stale.status = SimStatus::Inactive;
    stale.last_position = p1;
    app.state.cache.put_sim(&stale).await;
    assert_eq!(app.get_json(&format!("/sims/{sim}")).await["status"], "inactive");

    // Reached already: answers at once, from Postgres.
    let reached = app
        .get_consistent(&format!("/sims/{sim}"), &p1.to_string())
        .expect(StatusCode::OK)
        .await;
    assert_eq!(reached["status"], "active");

    // Not reached: waits until the projector's checkpoint passes it.
    let projector = pool.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(200)).await;
        set_checkpoint(&projector, "read-models", p2).await;
    });
    let started = Instant::now();
    let response = app
        .get_consistent(&format!("/sims/{sim}"), &p2.to_string())
        .response()
        .await;
    let waited = started.elapsed();
    assert_eq!(response.status(), StatusCode::OK);
    assert!(waited >= Duration::from_millis(190), "answered after {waited:?}");
    assert!(waited < Duration::from_millis(1500), "answered after {waited:?}");
    assert_eq!(response.json::<Value>().await.unwrap()["status"], "active");

    // Another projector's checkpoint does not count; never reached: 503 after the bound.
    let p3 = assign_data_quota(&store, &sim, 10, 10).await;
    set_checkpoint(&pool, "something-else", p3).await;
    let started = Instant::now();
    let response = app
        .get_consistent("/fleet/summary", &p3.to_string())
        .response()
        .await;
    let waited = started.elapsed();
    assert_eq!(response.headers()["retry-after"], "1");
    let error = error_body(response, StatusCode::SERVICE_UNAVAILABLE, "CONSISTENCY_TIMEOUT").await;
    assert_eq!(error["details"]["position"], p3);
    assert!(waited >= Duration::from_millis(1900), "gave up after {waited:?}");
    assert!(app.metrics().await.contains("query_consistency_timeouts_total 1"));

    // Not a position, and a position past the log's end.
    for bad in ["abc", "-1", "1.5", "999999"] {
        let list = app.get_consistent("/sims", bad);
        expect_error(list, StatusCode::BAD_REQUEST, "INVALID_CONSISTENCY_TOKEN").await;
    }
    // Without credentials the token is not even looked at.
    let anonymous = app
        .anonymous("/sims")
        .header("x-consistency-token", p3.to_string());
    assert_eq!(anonymous.response().await.status(), StatusCode::UNAUTHORIZED);
}

#[sqlx::test(migrator = "eventstore::MIGRATOR")]
async fn the_checkpoint_is_compared_as_a_pair(pool: PgPool) {
    let app = QueryApi::start_with(pool.clone(), |config| {
        config.consistency_wait = Duration::from_millis(300);
        config.consistency_projector = "custom".into();
    })
    .await;
    let store = app.store();
    let p1 = register(&store, &iccid(1), "a", Utc::now()).await;
    let p2 = register(&store, &iccid(2), "b", Utc::now()).await;
    // A checkpoint at a higher position but an older transaction has not passed p2.
    sqlx::query(
        "INSERT INTO projection_checkpoints (projector, transaction_id, position, stream_sequence) \
         SELECT 'custom', transaction_id, $2, 1 FROM events WHERE position = $1",
    )
    .bind(p1)
    .bind(p2 + 100)
    .execute(&pool)
    .await
    .unwrap();
    let not_passed = app.get_consistent("/sims", &p2.to_string());
    expect_error(not_passed, StatusCode::SERVICE_UNAVAILABLE, "CONSISTENCY_TIMEOUT").await;
    for passed in [p1.to_string(), "0".to_owned()] {
        let list = app.get_consistent("/sims", &passed).response().await;
        assert_eq!(list.status(), StatusCode::OK, "token {passed}");
    }
}
