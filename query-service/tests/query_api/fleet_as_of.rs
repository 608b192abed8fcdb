//! `GET /fleet/summary?as_of=`: the fleet as it was, from the fleet history the projectors
//! write (here by a rebuild, which runs the live projector's fold over the log).

use chrono::{DateTime, SecondsFormat, Utc};
use reqwest::StatusCode;
use serde_json::Value;
use sqlx::PgPool;

use crate::common::*;

/// Every read model, the fleet history included, replayed from the log.
async fn project(pool: &PgPool) {
    projectors::rebuild(pool, &projectors::RebuildOptions::new("read-models"))
        .await
        .unwrap();
}

/// An instant between two events (the clock moves on before and after it).
async fn instant() -> DateTime<Utc> {
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    let at = Utc::now();
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    at
}

async fn summary_at(app: &QueryApi, at: DateTime<Utc>) -> Value {
    let at = at.to_rfc3339_opts(SecondsFormat::Micros, true);
    app.get_json(&format!("/fleet/summary?as_of={}", at.replace('+', "%2B")))
        .await
}

#[sqlx::test(migrator = "eventstore::MIGRATOR")]
async fn the_summary_as_of_an_instant_is_the_fleet_then(pool: PgPool) {
    let app = QueryApi::start(pool.clone()).await;
    let store = eventstore::EventStore::new(pool.clone());
    let (a, b) = (iccid(1), iccid(2));
    let before_all = instant().await;
    register(&store, &a, "pump 1", Utc::now()).await;
    register(&store, &b, "pump 2", Utc::now()).await;
    assign_data_quota(&store, &a, 1000, 1000).await;
    let registered = instant().await;
    provider_enabled(&store, &a, Utc::now()).await;
    let activated = instant().await;
    data_consumed(&store, &a, 150).await;
    let consumed = instant().await;
    project(&pool).await;

    let empty = summary_at(&app, before_all).await;
    assert_eq!(empty["sims_total"], 0);
    assert_eq!(empty["as_of_position"], 0);

    let then = summary_at(&app, registered).await;
    assert_eq!(then["sims_total"], 2);
    assert_eq!(then["sims_by_status"]["inactive"], 2);
    assert_eq!(then["sims_by_status"]["active"], 0);
    assert_eq!(then["data"]["total"], 1000);
    assert_eq!(then["data"]["remaining"], 1000);
    assert_eq!(then["data"]["warning"], 0);
    assert_eq!(then["unknown"], serde_json::json!({}));

    let after_status = summary_at(&app, activated).await;
    assert_eq!(after_status["sims_by_status"]["inactive"], 1);
    assert_eq!(after_status["sims_by_status"]["active"], 1);
    assert_eq!(after_status["data"]["remaining"], 1000);
    assert!(after_status["as_of_position"].as_i64() > then["as_of_position"].as_i64());

    let after_usage = summary_at(&app, consumed).await;
    assert_eq!(after_usage["sims_by_status"], after_status["sims_by_status"]);
    assert_eq!(after_usage["data"]["remaining"], 150);
    assert_eq!(after_usage["data"]["warning"], 1, "85 % used");

    // Now, the history's answer is the read models' summary, figure for figure.
    let now = summary_at(&app, Utc::now()).await;
    let current = app.get_json("/fleet/summary").await;
    for figure in [
        "sims_total",
        "sims_by_status",
        "changes_pending",
        "data",
        "sms",
        "sms_messages_by_status",
    ] {
        assert_eq!(now[figure], current[figure], "{figure}");
    }
}

#[sqlx::test(migrator = "eventstore::MIGRATOR")]
async fn before_the_history_began_only_statuses_are_known(pool: PgPool) {
    let app = QueryApi::start(pool.clone()).await;
    let store = eventstore::EventStore::new(pool.clone());
    register(&store, &iccid(1), "pump 1", Utc::now()).await;
    let registered = instant().await;
    project(&pool).await;
    sqlx::query("INSERT INTO fleet_history_origin (since, reason) VALUES (now(), 'added late')")
        .execute(&pool)
        .await
        .unwrap();

    let answer = summary_at(&app, registered).await;
    assert_eq!(answer["sims_total"], 1);
    assert_eq!(answer["sims_by_status"]["inactive"], 1);
    for figure in ["changes_pending", "data", "sms", "sms_messages_by_status"] {
        assert!(answer[figure].is_null(), "{figure}");
        let reason = answer["unknown"][figure].as_str().unwrap();
        assert!(reason.contains("added late"), "{reason}");
    }
}

#[sqlx::test(migrator = "eventstore::MIGRATOR")]
async fn as_of_in_the_future_or_unparsable_is_refused(pool: PgPool) {
    let app = QueryApi::start(pool).await;
    let tomorrow = (Utc::now() + chrono::Duration::days(1)).to_rfc3339_opts(SecondsFormat::Secs, true);
    for query in [
        format!("as_of={tomorrow}"),
        "as_of=yesterday".into(),
        "as_of=".into(),
        "when=now".into(),
    ] {
        let response = app.get(&format!("/fleet/summary?{query}")).send().await.unwrap();
        error_body(response, StatusCode::BAD_REQUEST, "INVALID_QUERY").await;
    }
}
