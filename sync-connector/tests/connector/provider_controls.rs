//! Connectivity reset, auto top-up and the account's limits: from the command API through the
//! relay and the connector to the simulator, completed there and in the read models, failed
//! with the provider's message when the simulator refuses, and dispatched exactly once across
//! a connector restart.

use std::time::Duration;

use chrono::Utc;
use domain::limits::{
    AccountLimits, AccountLimitsCommand, LimitIds, ACCOUNT_LIMITS_ID, ACCOUNT_SUBJECT_TOKEN,
};
use domain::{Aggregate, Sim, SimCommand};
use eventstore::{CommandContext, EventMetadata, EventStore, StoredEvent};
use once_simulator::Control;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use sqlx::PgPool;
use testkit::{eventually, CommandApi};
use tokio::sync::watch;
use uuid::Uuid;

use crate::common::Harness;
use crate::requests::projector;

/// The ICCIDs the event store holds as active after the first poll.
async fn active_sims(harness: &Harness) -> Vec<String> {
    let store = EventStore::new(harness.pool.clone());
    let mut active = Vec::new();
    for iccid in harness.simulator().iccids() {
        if store.load::<Sim>(&iccid).await.unwrap().state.status() == domain::SimStatus::Active {
            active.push(iccid);
        }
    }
    active
}

async fn send(
    commands: &CommandApi,
    token: &str,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> StatusCode {
    let mut request = commands.request(method, path, token);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let answer = request.send().await.unwrap();
    let status = answer.status();
    assert!(status.is_success(), "{path}: {status} {:?}", answer.text().await);
    status
}

async fn controls_of(pool: &PgPool, iccid: &str) -> Value {
    // Null until the projector has written the SIM's row.
    sqlx::query_scalar::<_, Value>("SELECT controls FROM sims WHERE iccid = $1")
        .bind(iccid)
        .fetch_optional(pool)
        .await
        .unwrap()
        .unwrap_or(Value::Null)
}

async fn reason_of(pool: &PgPool, event_type: &str) -> String {
    sqlx::query_scalar("SELECT payload->>'reason' FROM events WHERE event_type = $1")
        .bind(event_type)
        .fetch_one(pool)
        .await
        .unwrap()
}

#[sqlx::test(migrator = "eventstore::MIGRATOR")]
async fn reset_auto_top_up_and_limits_complete_at_the_provider_and_in_the_read_models_or_fail_with_its_message(
    pool: PgPool,
) {
    let (harness, connector) = Harness::polled(pool.clone(), 8, 0, &[]).await;
    let (_relay_stop, _relay) = harness.start_relay();
    let (stop, shutdown) = watch::channel(false);
    let mut tasks = connector.spawn(shutdown.clone());
    let projector = projector(&harness).await;
    let projecting = tokio::spawn(async move { projector.run(shutdown).await });
    let (commands, token) = CommandApi::start_as_admin(pool.clone()).await;
    let active = active_sims(&harness).await;
    assert!(active.len() >= 2, "the fleet has active SIMs: {active:?}");
    let (one, other) = (active[0].clone(), active[1].clone());
    let sim = harness.simulator();

    // Completed: at the simulator and in the SIM view.
    let accepted = send(
        &commands,
        &token,
        Method::POST,
        &format!("/sims/{one}/connectivity-reset"),
        None,
    )
    .await;
    assert_eq!(accepted, StatusCode::ACCEPTED);
    send(
        &commands,
        &token,
        Method::PUT,
        &format!("/sims/{one}/auto-topup"),
        Some(json!({"enabled": true})),
    )
    .await;
    eventually(
        Duration::from_secs(30),
        "reset and auto top-up to complete in the read model",
        || async {
            let controls = controls_of(&pool, &one).await;
            controls["last_reset"]["state"] == "completed"
                && controls["auto_topup"] == true
                && controls["last_auto_topup"]["state"] == "completed"
        },
    )
    .await;
    assert_eq!(sim.resets(&one), 1);
    assert!(sim.auto_top_up(&one));

    // The limits: offered ids read by the connector, a change carried out.
    let limits = commands.get("/limits", &token).send().await.unwrap();
    assert_eq!(limits.status(), StatusCode::OK);
    send(
        &commands,
        &token,
        Method::PUT,
        "/limits",
        Some(json!({"data_limit_id": 3, "sms_mo_limit_id": 2})),
    )
    .await;
    eventually(
        Duration::from_secs(30),
        "the limits change to complete",
        || async { harness.count("AccountLimitsChangeCompleted").await == 1 },
    )
    .await;
    assert_eq!((sim.account_limits().data, sim.account_limits().sms_mo), (3, 2));
    let view: Value = commands
        .get("/limits", &token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(view["confirmed"]["data_limit_id"], 3, "{view}");
    assert_eq!(view["last_change"]["state"], "completed", "{view}");
    assert!(view["selectable"].as_array().unwrap().len() > 3, "{view}");
    let data_now: Vec<&Value> = view["at_provider"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|l| l["service"] == "data")
        .collect();
    assert_eq!(data_now.len(), 1, "{view}");
    assert_eq!(data_now[0]["id"], 3);
    let subject_token: String =
        sqlx::query_scalar("SELECT iccid FROM events WHERE event_type = 'AccountLimitsChangeRequested'")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(subject_token, ACCOUNT_SUBJECT_TOKEN);

    // Failed with the provider's message when the simulator refuses.
    sim.set_refusal(Control::Reset, Some("Connectivity reset refused by the test"));
    sim.set_refusal(Control::AutoTopUp, Some("Auto top up refused by the test"));
    send(
        &commands,
        &token,
        Method::POST,
        &format!("/sims/{other}/connectivity-reset"),
        None,
    )
    .await;
    send(
        &commands,
        &token,
        Method::PUT,
        &format!("/sims/{other}/auto-topup"),
        Some(json!({"enabled": true})),
    )
    .await;
    // 1NCE refuses an id it does not offer with 400 and its message.
    send(
        &commands,
        &token,
        Method::PUT,
        "/limits",
        Some(json!({"data_limit_id": 99})),
    )
    .await;
    eventually(
        Duration::from_secs(30),
        "the refused controls to fail",
        || async {
            let controls = controls_of(&pool, &other).await;
            controls["last_reset"]["state"] == "failed"
                && controls["last_auto_topup"]["state"] == "failed"
                && harness.count("AccountLimitsChangeFailed").await == 1
        },
    )
    .await;
    let controls = controls_of(&pool, &other).await;
    assert!(
        controls["last_reset"]["reason"]
            .as_str()
            .unwrap()
            .contains("Connectivity reset refused by the test"),
        "{controls}"
    );
    assert_eq!(controls["auto_topup"], Value::Null, "{controls}");
    assert!(reason_of(&pool, "AutoTopUpChangeFailed")
        .await
        .contains("Auto top up refused by the test"));
    assert!(reason_of(&pool, "AccountLimitsChangeFailed").await.contains("99"));
    assert_eq!(sim.resets(&other), 0);
    assert!(!sim.auto_top_up(&other));
    assert_eq!(sim.account_limits().data, 3);
    let view: Value = commands
        .get("/limits", &token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        view["confirmed"]["data_limit_id"], 3,
        "a failed change keeps the confirmed ids"
    );
    assert_eq!(view["last_change"]["state"], "failed");

    let states: Vec<(String, String)> =
        sqlx::query_as("SELECT kind, state FROM sync_dispatches WHERE kind IN ('connectivity_reset', 'auto_topup', 'limits') ORDER BY kind, state")
            .fetch_all(&pool)
            .await
            .unwrap();
    let states: Vec<(&str, &str)> = states.iter().map(|(k, s)| (k.as_str(), s.as_str())).collect();
    assert_eq!(
        states,
        [
            ("auto_topup", "completed"),
            ("auto_topup", "failed"),
            ("connectivity_reset", "completed"),
            ("connectivity_reset", "failed"),
            ("limits", "completed"),
            ("limits", "failed"),
        ]
    );

    let _ = stop.send(true);
    while tasks.join_next().await.is_some() {}
    let _ = projecting.await;
    harness.cleanup().await;
}

/// The request event of `event_type` in the aggregate's history.
async fn requested(store: &EventStore, aggregate_type: &str, id: &str, event_type: &str) -> StoredEvent {
    store
        .events_of(aggregate_type, id)
        .await
        .unwrap()
        .into_iter()
        .rev()
        .find(|e| e.event_type == event_type)
        .unwrap()
}

async fn execute_sim(store: &EventStore, iccid: &str, command: SimCommand) {
    store
        .execute::<Sim>(
            iccid,
            iccid,
            command,
            &CommandContext::new(EventMetadata::new("user:operator")),
        )
        .await
        .unwrap();
}

/// A dispatch record as an instance that died after marking it (its owner holds no lock).
async fn left_dispatching(
    pool: &PgPool,
    request_id: Uuid,
    kind: &str,
    aggregate_id: &str,
    token: &str,
    before: Value,
) {
    sqlx::query(
        "INSERT INTO sync_dispatches (request_id, kind, aggregate_id, iccid, state, owner, before_call, dispatched_at, attempts) \
         VALUES ($1, $2, $3, $4, 'dispatching', $5, $6, now(), 1)",
    )
    .bind(request_id)
    .bind(kind)
    .bind(aggregate_id)
    .bind(token)
    .bind(Uuid::new_v4())
    .bind(before)
    .execute(pool)
    .await
    .unwrap();
}

#[sqlx::test(migrator = "eventstore::MIGRATOR")]
async fn controls_are_dispatched_exactly_once_across_a_restart_and_a_reset_in_doubt_is_never_sent_again(
    pool: PgPool,
) {
    let (harness, connector) = Harness::polled(pool.clone(), 8, 0, &[]).await;
    let store = EventStore::new(pool.clone());
    let active = active_sims(&harness).await;
    let (a, b, c) = (active[0].clone(), active[1].clone(), active[2].clone());
    let sim = harness.simulator();
    connector.requests.read_provider_limits().await.unwrap();
    let offered: i64 = sqlx::query_scalar("SELECT count(*) FROM provider_limits WHERE NOT current")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert!(offered > 3, "{offered}");

    // Carried out, then handled again by a restarted connector: nothing is sent twice.
    let reset_id = Uuid::now_v7();
    execute_sim(
        &store,
        &a,
        SimCommand::RequestConnectivityReset {
            request_id: reset_id,
            at: Utc::now(),
        },
    )
    .await;
    let auto_id = Uuid::now_v7();
    execute_sim(
        &store,
        &a,
        SimCommand::RequestAutoTopUp {
            request_id: auto_id,
            enabled: true,
            at: Utc::now(),
        },
    )
    .await;
    let limits_id = Uuid::now_v7();
    let change = AccountLimitsCommand::RequestChange {
        request_id: limits_id,
        limits: LimitIds {
            data_limit_id: Some(4),
            ..Default::default()
        },
        at: Utc::now(),
    };
    store
        .execute::<AccountLimits>(
            ACCOUNT_LIMITS_ID,
            ACCOUNT_SUBJECT_TOKEN,
            change,
            &CommandContext::new(EventMetadata::new("user:operator")),
        )
        .await
        .unwrap();
    let events = [
        requested(&store, Sim::TYPE, &a, "ConnectivityResetRequested").await,
        requested(&store, Sim::TYPE, &a, "AutoTopUpChangeRequested").await,
        requested(
            &store,
            AccountLimits::TYPE,
            ACCOUNT_LIMITS_ID,
            "AccountLimitsChangeRequested",
        )
        .await,
    ];
    for event in &events {
        assert_eq!(
            connector.requests.handle(event).await.unwrap(),
            sync_connector::Disposition::Done
        );
    }
    sim.reset_stats();
    let restarted = harness.connector().await;
    for event in &events {
        assert_eq!(
            restarted.requests.handle(event).await.unwrap(),
            sync_connector::Disposition::Done
        );
    }
    assert_eq!(sim.resets(&a), 1);
    assert_eq!(sim.stats().sims_calls, 0, "nothing sent again after the restart");
    for id in [reset_id, auto_id, limits_id] {
        assert_eq!(harness.dispatch_state(id).await, "completed");
    }
    assert_eq!(sim.account_limits().data, 4);

    // A reset sent by an instance that died before recording the answer: the provider's events
    // show it, so it completes without a second call.
    let before = sim_total_events(&harness, &b).await;
    let took = Uuid::now_v7();
    execute_sim(
        &store,
        &b,
        SimCommand::RequestConnectivityReset {
            request_id: took,
            at: Utc::now(),
        },
    )
    .await;
    left_dispatching(
        &pool,
        took,
        "connectivity_reset",
        &b,
        &b,
        json!({ "total_events": before }),
    )
    .await;
    sim_reset_directly(&harness, &b).await;
    let event = requested(&store, Sim::TYPE, &b, "ConnectivityResetRequested").await;
    restarted.requests.handle(&event).await.unwrap();
    assert_eq!(harness.dispatch_state(took).await, "completed");
    assert_eq!(sim.resets(&b), 1, "not sent again");

    // One whose call never reached the provider: nobody can tell, so it is unknown, not resent.
    let before = sim_total_events(&harness, &c).await;
    let lost = Uuid::now_v7();
    execute_sim(
        &store,
        &c,
        SimCommand::RequestConnectivityReset {
            request_id: lost,
            at: Utc::now(),
        },
    )
    .await;
    left_dispatching(
        &pool,
        lost,
        "connectivity_reset",
        &c,
        &c,
        json!({ "total_events": before }),
    )
    .await;
    let event = requested(&store, Sim::TYPE, &c, "ConnectivityResetRequested").await;
    restarted.requests.handle(&event).await.unwrap();
    assert_eq!(harness.dispatch_state(lost).await, "unknown");
    assert_eq!(sim.resets(&c), 0);
    let state = store.load::<Sim>(&c).await.unwrap().state;
    let last = state.controls().last_reset.clone().unwrap();
    assert_eq!(last.state, domain::ControlState::Unknown);
    harness.cleanup().await;
}

/// The provider's event count of a SIM (what the connector records before a reset).
async fn sim_total_events(harness: &Harness, iccid: &str) -> u64 {
    let base = harness.simulator.base_url();
    let http = reqwest::Client::new();
    let token = once_token(&http, &base).await;
    let page: Value = http
        .get(format!("{base}/v1/sims/{iccid}/events?page=1&pageSize=1"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    page["totalEvents"].as_u64().unwrap()
}

/// A reset at the provider, as the dead instance's call made it.
async fn sim_reset_directly(harness: &Harness, iccid: &str) {
    let base = harness.simulator.base_url();
    let http = reqwest::Client::new();
    let token = once_token(&http, &base).await;
    let answer = http
        .post(format!("{base}/v1/sims/{iccid}/reset"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), StatusCode::CREATED);
}

async fn once_token(http: &reqwest::Client, base: &str) -> String {
    let answer: Value = http
        .post(format!("{base}/oauth/token"))
        .basic_auth("simulator", Some("simulator-secret"))
        .json(&json!({"grant_type": "client_credentials"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    answer["access_token"].as_str().unwrap().to_owned()
}
