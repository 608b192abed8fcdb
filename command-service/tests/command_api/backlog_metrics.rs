//! The webhook and bulk-job gauges the alerts read (`backlog_metrics.rs`): a subscription that
//! gave up, one stuck on a receiver that never answers, one paused, and a job no worker takes.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::json;
use sqlx::PgPool;
use testkit::eventually;

use crate::common::{iccid, CommandApi, Exchange};

/// The value of the series `line` names (`name{labels}`) in the `/metrics` text.
fn value(metrics: &str, series: &str) -> Option<f64> {
    metrics
        .lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

#[sqlx::test(migrator = "eventstore::MIGRATOR")]
async fn failing_paused_and_lagging_subscriptions_and_a_job_no_worker_takes_are_exported(pool: PgPool) {
    let app = CommandApi::start_with(pool, |config| {
        config.webhooks.allow_private = true;
        config.webhooks.poll = Duration::from_millis(50);
        config.webhooks.backoff = Duration::from_millis(50);
        config.webhooks.backoff_max = Duration::from_millis(100);
        config.webhooks.max_attempts = 2;
        config.webhooks.timeout = Duration::from_secs(30);
        config.bulk.worker = false;
    })
    .await;
    let token = app.admin_token().await;

    let metrics = app.metrics().await;
    for series in [
        r#"webhook_subscriptions{status="failing"}"#,
        r#"bulk_jobs_unfinished{status="queued"}"#,
        "webhook_delivery_lag_seconds",
        "bulk_job_oldest_queued_age_seconds",
    ] {
        assert_eq!(
            value(&metrics, series),
            Some(0.0),
            "{series} at 0 from the start in {metrics}"
        );
    }

    // A port nobody listens on refuses at once: two attempts, then `failing`.
    let refused = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let refused_url = format!("http://{}/hook", refused.local_addr().unwrap());
    drop(refused);
    // A receiver that accepts and never answers: the attempt waits for the 30 s timeout, the
    // subscription stays active and falls behind.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let silent_url = format!("http://{}/hook", silent.local_addr().unwrap());
    let _held = tokio::spawn(async move {
        let mut open = Vec::new();
        while let Ok((socket, _)) = silent.accept().await {
            open.push(socket);
        }
    });
    let subscribe = |url: String| {
        let app = &app;
        let token = &token;
        async move {
            let created = app
                .post("/webhooks", token)
                .json(&json!({"url": url, "event_types": ["*"]}))
                .expect(StatusCode::CREATED)
                .await;
            created["id"].as_str().unwrap().to_owned()
        }
    };
    let paused = subscribe(silent_url.clone()).await;
    app.patch(&format!("/webhooks/{paused}"), &token)
        .json(&json!({"status": "paused"}))
        .expect(StatusCode::OK)
        .await;
    subscribe(refused_url).await;
    app.register_sim(&token, &iccid(1)).await;
    eventually(
        Duration::from_secs(20),
        "the refused subscription to fail",
        || async { value(&app.metrics().await, r#"webhook_subscriptions{status="failing"}"#) == Some(1.0) },
    )
    .await;
    // Then the silent one, which starts at the end of the log: the next event is its first,
    // and it hangs there.
    subscribe(silent_url).await;
    assert_eq!(
        value(&app.metrics().await, "webhook_delivery_lag_seconds"),
        Some(0.0)
    );
    app.register_sim(&token, &iccid(2)).await;
    app.post("/bulk-jobs", &token)
        .json(&json!({"action": "suspend", "iccids": [iccid(1)]}))
        .expect(StatusCode::ACCEPTED)
        .await;

    eventually(
        Duration::from_secs(20),
        "the gauges to show the backlog",
        || async {
            let metrics = app.metrics().await;
            value(&metrics, r#"webhook_subscriptions{status="failing"}"#) == Some(1.0)
                && value(&metrics, r#"webhook_subscriptions{status="active"}"#) == Some(1.0)
                && value(&metrics, r#"webhook_subscriptions{status="paused"}"#) == Some(1.0)
                && value(&metrics, r#"bulk_jobs_unfinished{status="queued"}"#) == Some(1.0)
                && value(&metrics, r#"bulk_jobs_unfinished{status="running"}"#) == Some(0.0)
                && value(&metrics, "webhook_delivery_lag_seconds").is_some_and(|lag| lag >= 1.0)
                && value(&metrics, "bulk_job_oldest_queued_age_seconds").is_some_and(|age| age >= 1.0)
        },
    )
    .await;
}
