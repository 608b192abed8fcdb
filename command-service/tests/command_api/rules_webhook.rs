//! Rules with a webhook as their action (delivered by the subscription's dispatcher, signed,
//! once per (rule, event) across a restart, with the cause in the body), a dry run that reads
//! the tags a SIM had at each event, and the tag filter of a webhook subscription.

use std::sync::Arc;
use std::time::Duration;

use eventstore::EventStore;
use reqwest::StatusCode;
use serde_json::{json, Value};
use sqlx::PgPool;
use webhooks::signature;

use crate::common::{expect_error, iccid, CommandApi, Exchange};
use crate::rules::{create, cross, firings, register, rule, wait_for_firings};
use crate::webhooks::{subscribe, wait_for, Receiver};

async fn start(pool: PgPool) -> CommandApi {
    CommandApi::start_with(pool, |config| {
        config.rules.poll = Duration::from_millis(50);
        config.rules.lease = Duration::from_secs(2);
        config.webhooks.allow_private = true;
        config.webhooks.poll = Duration::from_millis(50);
        config.webhooks.backoff = Duration::from_millis(50);
        config.webhooks.timeout = Duration::from_secs(2);
    })
    .await
}

async fn set_tags(app: &CommandApi, token: &str, n: u32, tags: Value) {
    app.patch(&format!("/sims/{}", iccid(n)), token)
        .json(&json!({"tags": tags}))
        .expect(StatusCode::OK)
        .await;
}

async fn count_events(pool: &PgPool, event_type: &str) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM events WHERE event_type = $1")
        .bind(event_type)
        .fetch_one(pool)
        .await
        .unwrap()
}

#[sqlx::test(migrator = "eventstore::MIGRATOR")]
async fn a_webhook_rule_delivers_each_crossing_once_signed_with_its_cause(pool: PgPool) {
    let app = start(pool.clone()).await;
    let token = app.admin_token().await;
    let receiver = Arc::new(Receiver::default());
    let url = receiver.start().await;
    // The subscription's own filter matches nothing here: what it gets is the rule's.
    let (webhook_id, secret) = subscribe(&app, &token, &url, json!(["SimSuspended"])).await;
    let mut body = rule();
    body["action"] = json!({"kind": "webhook", "webhook_id": uuid::Uuid::now_v7()});
    let refused = expect_error(
        app.post("/rules", &token).json(&body),
        StatusCode::UNPROCESSABLE_ENTITY,
        "INVALID_RULE",
    )
    .await;
    assert!(
        refused["message"].as_str().unwrap().contains("webhook"),
        "{refused}"
    );
    body["action"] = json!({"kind": "webhook", "webhook_id": webhook_id});
    let id = create(&app, &token, &body).await;
    register(&app, &token, 1, json!(["fleet-7"])).await;
    register(&app, &token, 2, json!(["fleet-8"])).await;
    app.post(&format!("/rules/{id}/enable"), &token)
        .expect(StatusCode::OK)
        .await;
    let store = EventStore::new(pool.clone());
    cross(&store, 1).await;
    cross(&store, 2).await;
    wait_for_firings(&app, &token, &id, 1).await;
    wait_for(&receiver, 1).await;
    tokio::time::sleep(Duration::from_millis(300)).await;

    let fired = firings(&app, &token, &id).await;
    assert_eq!(fired.len(), 1, "only fleet-7's crossing: {fired:?}");
    assert_eq!(
        (&fired[0]["action"], &fired[0]["outcome"]),
        (&json!("webhook"), &json!("applied"))
    );
    assert_eq!(receiver.count(), 1, "one delivery");
    let (headers, raw) = receiver.received.lock().unwrap()[0].clone();
    let now = chrono::Utc::now().timestamp();
    assert!(signature::verify(
        &secret,
        headers["x-signature"].to_str().unwrap(),
        &raw,
        now,
        300
    ));
    let delivered: Value = serde_json::from_slice(&raw).unwrap();
    assert_eq!(delivered["event_type"], "RuleWebhookRequested", "{delivered}");
    assert_eq!(delivered["aggregate_id"], id);
    assert_eq!(delivered["payload"]["webhook_id"], webhook_id);
    let cause = &delivered["payload"]["cause"];
    assert_eq!(cause["event_id"], fired[0]["event_id"], "the crossing is named");
    assert_eq!(cause["event"]["event_type"], "QuotaThresholdCrossed");
    assert_eq!(cause["iccid"], iccid(1));
    assert_eq!(delivered["metadata"]["actor"], format!("rule:{id}"));
    let causation = delivered["metadata"]["causation_id"].as_str().unwrap();
    assert_ne!(Some(causation), delivered["metadata"]["command_id"].as_str());
    assert_eq!(delivered["position"], fired[0]["command_position"]);

    // A restart that lost the firing's record and the engine's cursor: the request is not
    // recorded again (its idempotency key answers) and nothing is delivered twice.
    app.running.stop().await.unwrap();
    sqlx::query("DELETE FROM rule_firings")
        .execute(&pool)
        .await
        .unwrap();
    sqlx::query("UPDATE rule_engine SET cursor_transaction_id = 0, cursor_position = 0, lease_owner = NULL")
        .execute(&pool)
        .await
        .unwrap();
    let app = start(pool.clone()).await;
    let token = app.admin_token().await;
    wait_for_firings(&app, &token, &id, 1).await;
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(count_events(&pool, "RuleWebhookRequested").await, 1);
    assert_eq!(receiver.count(), 1, "not delivered again");
    let refired = firings(&app, &token, &id).await;
    assert_eq!(
        refired[0]["command_id"], fired[0]["command_id"],
        "the first answer again"
    );

    // The dry run names the webhook it would call.
    let dry = app
        .post(&format!("/rules/{id}/dry-run"), &token)
        .expect(StatusCode::OK)
        .await;
    assert_eq!(dry["would_fire"].as_array().unwrap().len(), 1, "{dry}");
    assert_eq!(
        dry["would_fire"][0]["command"],
        format!("webhook {webhook_id} {url}")
    );
    assert_eq!(dry["would_fire"][0]["already_fired"], true);
}

#[sqlx::test(migrator = "eventstore::MIGRATOR")]
async fn a_dry_run_uses_the_tags_each_sim_had_at_the_event(pool: PgPool) {
    let app = start(pool.clone()).await;
    let token = app.token_for_role("operator").await;
    let store = EventStore::new(pool.clone());
    // SIM 1 is tagged fleet-7 only after its crossing; SIM 2 loses the tag after its own.
    register(&app, &token, 1, json!([])).await;
    register(&app, &token, 2, json!(["fleet-7"])).await;
    cross(&store, 1).await;
    cross(&store, 2).await;
    set_tags(&app, &token, 1, json!(["fleet-7"])).await;
    set_tags(&app, &token, 2, json!([])).await;
    let id = create(&app, &token, &rule()).await;
    let dry = app
        .post(&format!("/rules/{id}/dry-run"), &token)
        .expect(StatusCode::OK)
        .await;
    assert_eq!(dry["evaluated"], 2, "{dry}");
    let would: Vec<&str> = dry["would_fire"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["iccid"].as_str().unwrap())
        .collect();
    assert_eq!(would, vec![iccid(2)], "the tags at each crossing, not today's");
}

#[sqlx::test(migrator = "eventstore::MIGRATOR")]
async fn a_tag_filter_delivers_only_events_of_sims_carrying_the_tag_then(pool: PgPool) {
    let app = start(pool.clone()).await;
    let token = app.admin_token().await;
    let receiver = Arc::new(Receiver::default());
    let url = receiver.start().await;
    for tag in ["", "has space", &"x".repeat(200)] {
        let body = json!({"url": url, "event_types": ["*"], "tag": tag});
        expect_error(
            app.post("/webhooks", &token).json(&body),
            StatusCode::UNPROCESSABLE_ENTITY,
            "INVALID_TAG",
        )
        .await;
    }
    let created = app
        .post("/webhooks", &token)
        .json(&json!({"url": url, "event_types": ["SimLabelChanged"], "tag": "fleet-7"}))
        .expect(StatusCode::CREATED)
        .await;
    assert_eq!(created["tag"], "fleet-7");
    let id = created["id"].as_str().unwrap().to_owned();
    register(&app, &token, 1, json!(["fleet-7"])).await;
    register(&app, &token, 2, json!([])).await;
    let label = |n: u32, label: &'static str| {
        app.patch(&format!("/sims/{}", iccid(n)), &token)
            .json(&json!({"label": label}))
            .expect(StatusCode::OK)
    };
    label(1, "one").await;
    label(2, "two").await;
    // The tag moves from SIM 1 to SIM 2: what counts is the tag at each event.
    set_tags(&app, &token, 1, json!([])).await;
    set_tags(&app, &token, 2, json!(["fleet-7"])).await;
    label(1, "one again").await;
    label(2, "two again").await;
    wait_for(&receiver, 2).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let got: Vec<(String, String)> = receiver
        .received
        .lock()
        .unwrap()
        .iter()
        .map(|(_, body)| {
            let event: Value = serde_json::from_slice(body).unwrap();
            let label = event["payload"]["label"].as_str().unwrap_or_default().to_owned();
            (event["iccid"].as_str().unwrap().to_owned(), label)
        })
        .collect();
    assert_eq!(
        got,
        vec![(iccid(1), "one".into()), (iccid(2), "two again".into())],
        "only while the SIM carried fleet-7"
    );
    // `""` removes the filter.
    let cleared = app
        .patch(&format!("/webhooks/{id}"), &token)
        .json(&json!({"tag": ""}))
        .expect(StatusCode::OK)
        .await;
    assert_eq!(cleared["tag"], Value::Null);
}
