//! `GET /fleet/summary`'s sync freshness (the oldest of the SIMs' newest usage reports) and the
//! top-ups that failed or whose outcome is unknown, from events the projectors applied.

use chrono::{DateTime, Duration, Utc};
use domain::ids::{Iccid, QuotaKind};
use domain::quota::QuotaCommand;
use domain::sim::SimCommand;
use domain::SimStatus;
use sqlx::PgPool;

use crate::common::*;

async fn report_usage(store: &eventstore::EventStore, iccid: &str, period_end: DateTime<Utc>) {
    let command = SimCommand::RecordUsage {
        period_start: period_end - Duration::days(1),
        period_end,
        data_bytes: 1_000,
        sms_mo: 0,
        sms_mt: 0,
    };
    execute_sim(store, iccid, command, context("connector:sync", "req-usage")).await;
}

async fn request_topup(store: &eventstore::EventStore, iccid: &str) -> uuid::Uuid {
    let request_id = uuid::Uuid::new_v4();
    let command = QuotaCommand::RequestTopUp {
        request_id,
        iccid: Iccid::parse(iccid).unwrap(),
        kind: QuotaKind::Data,
        volume: 500,
        payment_method: None,
        sim_status: SimStatus::Active,
        at: Utc::now(),
    };
    execute_data_quota(store, iccid, command).await;
    request_id
}

#[sqlx::test(migrator = "eventstore::MIGRATOR")]
async fn the_summary_tells_sync_freshness_and_failed_topups(pool: PgPool) {
    let app = QueryApi::start(pool.clone()).await;
    let store = eventstore::EventStore::new(pool.clone());
    let [a, b, c, d] = [1, 2, 3, 4].map(iccid);
    for sim in [&a, &b, &c, &d] {
        register(&store, sim, "meter", Utc::now()).await;
    }
    // A's newest report is the newer of its two; B's is the fleet's oldest among the SIMs in
    // service; C reported nothing; D's older report no longer counts once it is terminated.
    // Whole seconds: the database keeps microseconds.
    let now = DateTime::from_timestamp(Utc::now().timestamp(), 0).unwrap();
    report_usage(&store, &a, now - Duration::hours(30)).await;
    report_usage(&store, &a, now - Duration::hours(2)).await;
    report_usage(&store, &b, now - Duration::hours(5)).await;
    report_usage(&store, &d, now - Duration::hours(50)).await;
    let terminate = SimCommand::Terminate {
        reason: None,
        at: Utc::now(),
    };
    execute_sim(&store, &d, terminate, context("admin", "req-terminate")).await;

    // Top-ups: A's failed, B's outcome unknown, C's still waiting.
    for sim in [&a, &b, &c] {
        assign_data_quota(&store, sim, 1000, 100).await;
    }
    let failed = request_topup(&store, &a).await;
    let fail = QuotaCommand::FailTopUp {
        request_id: failed,
        reason: "card declined".into(),
        at: Utc::now(),
    };
    execute_data_quota(&store, &a, fail).await;
    let lost = request_topup(&store, &b).await;
    let unknown = QuotaCommand::RecordTopUpOutcomeUnknown {
        request_id: lost,
        reason: "timeout".into(),
        at: Utc::now(),
    };
    execute_data_quota(&store, &b, unknown).await;
    request_topup(&store, &c).await;

    projectors::rebuild(&pool, &projectors::RebuildOptions::new("read-models"))
        .await
        .unwrap();
    let summary = app.get_json("/fleet/summary").await;
    let oldest: DateTime<Utc> = summary["oldest_usage_report_at"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(oldest, now - Duration::hours(5), "{summary}");
    assert_eq!(summary["sims_without_usage_report"], 1, "{summary}");
    assert_eq!(summary["topups_failed"], 1, "{summary}");
    assert_eq!(summary["topups_outcome_unknown"], 1, "{summary}");
    assert_eq!(summary["data"]["topups_pending"], 1, "{summary}");
    // The same figures as gauges for Prometheus (loaded every 200 ms in tests), with the
    // readiness the scrape checked.
    testkit::wait::eventually(std::time::Duration::from_secs(10), "fleet gauges", || async {
        let text = app.metrics().await;
        [
            "fleet_topups_outcome_unknown 1",
            "fleet_topups_failed 1",
            "fleet_sims_without_usage_report 1",
            r#"fleet_topups_pending{kind="data"} 1"#,
            r#"sims_total{status="terminated"} 1"#,
            "service_ready 1",
        ]
        .iter()
        .all(|line| text.contains(line))
    })
    .await;
    let text = app.metrics().await;
    let age: f64 = text
        .lines()
        .find_map(|line| line.strip_prefix("fleet_oldest_usage_report_age_seconds "))
        .unwrap()
        .parse()
        .unwrap();
    assert!((5.0 * 3600.0..5.0 * 3600.0 + 60.0).contains(&age), "{age}");
}

#[sqlx::test(migrator = "eventstore::MIGRATOR")]
async fn a_fleet_without_usage_reports_has_no_freshness(pool: PgPool) {
    let app = QueryApi::start(pool.clone()).await;
    let store = eventstore::EventStore::new(pool.clone());
    register(&store, &iccid(1), "meter", Utc::now()).await;
    projectors::rebuild(&pool, &projectors::RebuildOptions::new("read-models"))
        .await
        .unwrap();
    let summary = app.get_json("/fleet/summary").await;
    assert_eq!(
        summary["oldest_usage_report_at"],
        serde_json::Value::Null,
        "{summary}"
    );
    assert_eq!(summary["sims_without_usage_report"], 1, "{summary}");
    assert_eq!(summary["topups_failed"], 0, "{summary}");
}

/// `/ready` names each dependency; without Redis the query API still answers from Postgres:
/// "degraded", not a failure (and `service_ready` stays 1).
#[sqlx::test(migrator = "eventstore::MIGRATOR")]
async fn ready_names_its_dependencies_and_is_degraded_without_redis(pool: PgPool) {
    let app = QueryApi::start(pool.clone()).await;
    let ready = app.client.get(app.url("/ready")).send().await.unwrap();
    assert_eq!(ready.status(), 200);
    let body: serde_json::Value = ready.json().await.unwrap();
    assert_eq!(
        body,
        serde_json::json!({"status": "ready", "dependencies": {"postgres": "ok", "redis": "ok"}})
    );

    let without_redis = QueryApi::start_with(pool, |config| {
        config.common.redis_url = "redis://127.0.0.1:1".into();
    })
    .await;
    let ready = without_redis
        .client
        .get(without_redis.url("/ready"))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status(), 200);
    let body: serde_json::Value = ready.json().await.unwrap();
    assert_eq!(
        body,
        serde_json::json!({"status": "degraded", "dependencies": {"postgres": "ok", "redis": "unavailable"}})
    );
    assert!(without_redis.metrics().await.contains("\nservice_ready 1\n"));
    // Reads still answer, from Postgres.
    assert_eq!(without_redis.get_json("/fleet/summary").await["sims_total"], 0);
}
