//! Rules: "on QuotaThresholdCrossed 80 % of data for tag fleet-7, top up" fires once per
//! crossing, with the crossing as its cause, across a restart (also one that lost the firing's
//! record and the engine's cursor); a dry run over the past finds the crossings and writes
//! nothing; the rule's own commands and refusals.

use std::time::Duration;

use domain::ids::{quota_aggregate_id, Iccid, QuotaKind};
use domain::quota::{Quota, QuotaCommand};
use eventstore::{CommandContext, EventMetadata, EventStore};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use sqlx::PgPool;
use testkit::eventually;

use crate::common::{expect_error, iccid, CommandApi, Exchange};

async fn start(pool: PgPool) -> CommandApi {
    CommandApi::start_with(pool, |config| {
        config.rules.poll = Duration::from_millis(50);
        config.rules.lease = Duration::from_secs(2);
        config.webhooks.worker = false;
    })
    .await
}

pub(crate) fn rule() -> Value {
    json!({
        "name": "top up fleet-7 at 80 %",
        "trigger": {"event_type": "QuotaThresholdCrossed", "tag": "fleet-7", "quota_kind": "data", "threshold": 80},
        "action": {"kind": "top_up"},
    })
}

pub(crate) async fn register(app: &CommandApi, token: &str, n: u32, tags: Value) {
    app.post("/sims", token)
        .json(&json!({"iccid": iccid(n), "imsi": "901405100000001", "tags": tags}))
        .expect(StatusCode::CREATED)
        .await;
}

/// The provider reports 85 % of the SIM's data used: a QuotaThresholdCrossed at 80.
pub(crate) async fn cross(store: &EventStore, n: u32) {
    let id = Iccid::parse(&iccid(n)).unwrap();
    let command = QuotaCommand::Assign {
        iccid: id.clone(),
        kind: QuotaKind::Data,
        total: 1_000,
        remaining: 150,
        expiry_date: None,
        at: chrono::Utc::now(),
    };
    let ctx = CommandContext {
        metadata: EventMetadata::new("connector:sync"),
        expected_version: None,
        idempotency: None,
    };
    store
        .execute::<Quota>(
            &quota_aggregate_id(&id, QuotaKind::Data),
            id.as_str(),
            command,
            &ctx,
        )
        .await
        .unwrap();
}

pub(crate) async fn create(app: &CommandApi, token: &str, body: &Value) -> String {
    let created = app
        .post("/rules", token)
        .json(body)
        .expect(StatusCode::CREATED)
        .await;
    created["aggregate_id"].as_str().unwrap().to_owned()
}

pub(crate) async fn top_ups(pool: &PgPool) -> Vec<(String, Value)> {
    sqlx::query_as("SELECT iccid, metadata FROM events WHERE event_type = 'TopUpRequested' ORDER BY position")
        .fetch_all(pool)
        .await
        .unwrap()
}

pub(crate) async fn firings(app: &CommandApi, token: &str, id: &str) -> Vec<Value> {
    let page = app
        .get(&format!("/rules/{id}/firings"), token)
        .expect(StatusCode::OK)
        .await;
    page.as_array().unwrap().clone()
}

pub(crate) async fn wait_for_firings(app: &CommandApi, token: &str, id: &str, count: usize) {
    eventually(Duration::from_secs(20), "the rule to fire", || async {
        firings(app, token, id).await.len() >= count
    })
    .await;
}

#[sqlx::test(migrator = "eventstore::MIGRATOR")]
async fn a_rule_fires_once_per_crossing_caused_by_it_and_across_restarts(pool: PgPool) {
    let app = start(pool.clone()).await;
    let token = app.token_for_role("operator").await;
    register(&app, &token, 1, json!(["fleet-7"])).await;
    register(&app, &token, 2, json!(["fleet-8"])).await;
    register(&app, &token, 3, json!(["fleet-7"])).await;
    let id = create(&app, &token, &rule()).await;
    // Created disabled: a crossing now does nothing.
    let store = EventStore::new(pool.clone());
    cross(&store, 3).await;
    app.post(&format!("/rules/{id}/enable"), &token)
        .expect(StatusCode::OK)
        .await;
    cross(&store, 1).await;
    cross(&store, 2).await;
    wait_for_firings(&app, &token, &id, 1).await;
    tokio::time::sleep(Duration::from_millis(300)).await;

    let fired = firings(&app, &token, &id).await;
    assert_eq!(
        fired.len(),
        1,
        "only the tagged SIM's crossing, after enabling: {fired:?}"
    );
    assert_eq!(fired[0]["iccid"], iccid(1));
    assert_eq!(fired[0]["outcome"], "applied", "{}", fired[0]);
    assert!(app
        .metrics()
        .await
        .contains("rule_firings_total{outcome=\"applied\"} 1"));
    let top_ups = top_ups(&pool).await;
    assert_eq!(top_ups.len(), 1);
    assert_eq!(top_ups[0].0, iccid(1));
    let metadata = &top_ups[0].1;
    assert_eq!(metadata["actor"], format!("rule:{id}"));
    let crossing: (i64, String) = sqlx::query_as(
        "SELECT position, aggregate_id FROM events WHERE event_type = 'QuotaThresholdCrossed' AND iccid = $1",
    )
    .bind(iccid(1))
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(fired[0]["event_position"], crossing.0);
    assert_eq!(fired[0]["event_id"], format!("quota:{}:2", crossing.1));
    assert_eq!(metadata["command_id"].as_str(), fired[0]["command_id"].as_str());
    assert!(metadata["causation_id"].is_string() && metadata["causation_id"] != metadata["command_id"]);

    // A restart that lost both the firing's record and the engine's cursor (a crash right
    // after the command): the event is read again, the command answers as the first time.
    app.running.stop().await.unwrap();
    sqlx::query("DELETE FROM rule_firings")
        .execute(&pool)
        .await
        .unwrap();
    sqlx::query("UPDATE rule_engine SET cursor_transaction_id = 0, cursor_position = 0, lease_owner = NULL")
        .execute(&pool)
        .await
        .unwrap();
    // And a crossing while no engine runs: acted on after the restart.
    register_direct(&pool, 4).await;
    cross(&store, 4).await;
    let app = start(pool.clone()).await;
    let token = app.login("operator-user", "correct-horse-battery").await["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    wait_for_firings(&app, &token, &id, 2).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let fired = firings(&app, &token, &id).await;
    assert_eq!(fired.len(), 2, "{fired:?}");
    let top_ups = self::top_ups(&pool).await;
    let sims: Vec<&str> = top_ups.iter().map(|t| t.0.as_str()).collect();
    assert_eq!(sims, vec![iccid(1), iccid(4)], "each crossing topped up once");
    assert_eq!(
        fired[1]["command_id"], top_ups[0].1["command_id"],
        "the first answer again"
    );
}

/// A SIM tagged fleet-7, registered straight into the store (no command API running).
async fn register_direct(pool: &PgPool, n: u32) {
    use domain::ids::Imsi;
    use domain::sim::{Sim, SimCommand};
    let id = Iccid::parse(&iccid(n)).unwrap();
    let command = SimCommand::Register {
        iccid: id.clone(),
        imsi: Imsi::parse("901405100000001").unwrap(),
        msisdn: None,
        label: None,
        tags: vec!["fleet-7".into()],
        at: chrono::Utc::now(),
    };
    let ctx = CommandContext {
        metadata: EventMetadata::new("user:admin"),
        expected_version: None,
        idempotency: None,
    };
    EventStore::new(pool.clone())
        .execute::<Sim>(id.as_str(), id.as_str(), command, &ctx)
        .await
        .unwrap();
}

#[sqlx::test(migrator = "eventstore::MIGRATOR")]
async fn a_dry_run_shows_the_past_crossings_it_would_act_on_and_writes_nothing(pool: PgPool) {
    let app = start(pool.clone()).await;
    let token = app.token_for_role("operator").await;
    register(&app, &token, 1, json!(["fleet-7"])).await;
    register(&app, &token, 2, json!([])).await;
    register(&app, &token, 3, json!(["fleet-7", "x"])).await;
    let store = EventStore::new(pool.clone());
    for n in 1..=3 {
        cross(&store, n).await;
    }
    let id = create(&app, &token, &rule()).await;
    let events_before: i64 = sqlx::query_scalar("SELECT count(*) FROM events")
        .fetch_one(&pool)
        .await
        .unwrap();

    let dry = app
        .post(&format!("/rules/{id}/dry-run"), &token)
        .expect(StatusCode::OK)
        .await;
    assert_eq!(dry["evaluated"], 3, "{dry}");
    let would: Vec<&str> = dry["would_fire"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["iccid"].as_str().unwrap())
        .collect();
    assert_eq!(would, vec![iccid(1), iccid(3)]);
    assert_eq!(dry["would_fire"][0]["command"], "top_up data");
    assert_eq!(dry["would_fire"][0]["already_fired"], false);
    assert_eq!(dry["truncated"], false);

    let future = (chrono::Utc::now() + chrono::Duration::hours(1)).to_rfc3339();
    let later = app
        .post(&format!("/rules/{id}/dry-run"), &token)
        .query(&[("since", future)])
        .expect(StatusCode::OK)
        .await;
    assert_eq!(later["evaluated"], 0, "{later}");

    let events_after: i64 = sqlx::query_scalar("SELECT count(*) FROM events")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(events_after, events_before, "a dry run writes no event");
    assert_eq!(app.count_rows(&["rule_firings"]).await, vec![0]);
}

#[sqlx::test(migrator = "eventstore::MIGRATOR")]
async fn rules_are_event_sourced_commands_for_operators(pool: PgPool) {
    let app = start(pool.clone()).await;
    let token = app.token_for_role("operator").await;
    let viewer = app.token_for_role("viewer").await;
    expect_error(
        app.post("/rules", &viewer).json(&rule()),
        StatusCode::FORBIDDEN,
        "FORBIDDEN",
    )
    .await;
    expect_error(app.get("/rules", &viewer), StatusCode::FORBIDDEN, "FORBIDDEN").await;
    let mut bad = rule();
    bad["trigger"]["threshold"] = json!(0);
    expect_error(
        app.post("/rules", &token).json(&bad),
        StatusCode::UNPROCESSABLE_ENTITY,
        "INVALID_RULE",
    )
    .await;

    let id = create(&app, &token, &rule()).await;
    let shown = app
        .get(&format!("/rules/{id}"), &token)
        .expect(StatusCode::OK)
        .await;
    assert_eq!(shown["enabled"], false);
    assert_eq!(shown["spec"]["action"]["kind"], "top_up");
    let mut changed = rule();
    changed["action"] = json!({"kind": "add_tag", "tag": "topped"});
    expect_error(
        app.request(Method::PUT, &format!("/rules/{id}"), &token)
            .header("if-match", "\"7\"")
            .json(&changed),
        StatusCode::PRECONDITION_FAILED,
        "VERSION_MISMATCH",
    )
    .await;
    app.request(Method::PUT, &format!("/rules/{id}"), &token)
        .header("if-match", "\"1\"")
        .json(&changed)
        .expect(StatusCode::OK)
        .await;
    app.post(&format!("/rules/{id}/enable"), &token)
        .expect(StatusCode::OK)
        .await;
    app.delete(&format!("/rules/{id}"), &token)
        .expect(StatusCode::OK)
        .await;
    expect_error(
        app.get(&format!("/rules/{id}"), &token),
        StatusCode::NOT_FOUND,
        "RULE_NOT_FOUND",
    )
    .await;
    expect_error(
        app.post(&format!("/rules/{id}/enable"), &token),
        StatusCode::GONE,
        "RULE_DELETED",
    )
    .await;
    assert_eq!(app.get("/rules", &token).expect(StatusCode::OK).await, json!([]));

    // Who changed what, when: the rule's history.
    let history: Vec<(String, Value)> = sqlx::query_as(
        "SELECT event_type, metadata FROM events WHERE aggregate_type = 'rule' AND aggregate_id = $1 ORDER BY sequence",
    )
    .bind(&id)
    .fetch_all(&pool)
    .await
    .unwrap();
    let types: Vec<&str> = history.iter().map(|h| h.0.as_str()).collect();
    assert_eq!(
        types,
        ["RuleCreated", "RuleChanged", "RuleEnabled", "RuleDeleted"]
    );
    assert!(history
        .iter()
        .all(|h| h.1["actor"].as_str().unwrap().starts_with("user:")));
}
