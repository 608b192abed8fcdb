//! Label and IMEI lock: changes at the provider recorded by the next poll, platform changes
//! carried out at 1NCE (completed, or failed with the provider's message), and the conflict
//! rule (a pending platform change wins over a provider-side change).

use std::time::Duration;

use chrono::Utc;
use domain::{Sim, SimCommand};
use eventstore::{handle_in_turn, CommandContext, EventMetadata, EventStore};
use once_simulator::QuotaKind;
use reqwest::StatusCode;
use serde_json::{json, Value};
use sqlx::PgPool;
use testkit::{eventually, CommandApi};
use tokio::sync::watch;
use uuid::Uuid;

use crate::common::Harness;
use crate::requests::projector;

#[sqlx::test(migrator = "eventstore::MIGRATOR")]
async fn a_label_and_imei_lock_changed_at_the_provider_are_recorded_by_the_next_poll(pool: PgPool) {
    let (harness, connector) = Harness::polled(pool.clone(), 10, 0, &[]).await;
    let iccid = harness.simulator().iccids()[3].clone();
    let store = EventStore::new(pool.clone());
    let before = store.load::<Sim>(&iccid).await.unwrap().state;
    let lock = !before.imei_lock();
    harness
        .simulator()
        .set_details(&iccid, Some("changed in the portal"), Some(lock));

    connector.poller.poll_once().await.unwrap();
    let sim = store.load::<Sim>(&iccid).await.unwrap().state;
    assert_eq!(sim.label(), Some("changed in the portal"));
    assert_eq!(sim.imei_lock(), lock);
    let (actor, event_types): (Value, Vec<String>) = sqlx::query_as(
        "SELECT (array_agg(metadata->'actor'))[1], array_agg(event_type ORDER BY position) FROM events \
         WHERE aggregate_id = $1 AND event_type IN ('SimLabelChanged', 'ImeiLockChanged')",
    )
    .bind(&iccid)
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(event_types, ["SimLabelChanged", "ImeiLockChanged"]);
    assert_eq!(actor, "connector:sync");
    // Seen once: the next poll records nothing, and nothing goes back to the provider.
    let head = harness.head().await;
    connector.poller.poll_once().await.unwrap();
    harness.assert_nothing_after(head).await;
    assert_eq!(harness.count("ProviderUpdateRequested").await, 0);
    harness.cleanup().await;
}

/// A label set through the command API on `iccid`; the answer's status is checked.
async fn patch(commands: &CommandApi, token: &str, iccid: &str, body: Value) {
    let answer = commands
        .patch(&format!("/sims/{iccid}"), token)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), StatusCode::OK, "{:?}", answer.text().await);
}

#[sqlx::test(migrator = "eventstore::MIGRATOR")]
async fn label_and_imei_lock_from_the_command_api_are_carried_out_at_the_provider_or_fail_with_its_message(
    pool: PgPool,
) {
    let (harness, connector) = Harness::polled(pool.clone(), 5, 10, &[]).await;
    let (_relay_stop, _relay) = harness.start_relay();
    let (stop, shutdown) = watch::channel(false);
    let mut tasks = connector.spawn(shutdown.clone());
    let projector = projector(&harness).await;
    let projecting = tokio::spawn(async move { projector.run(shutdown).await });
    let (commands, token) = CommandApi::start_as_admin(pool.clone()).await;
    let iccids = harness.simulator().iccids();
    let (done, refused) = (iccids[1].clone(), iccids[2].clone());

    patch(
        &commands,
        &token,
        &done,
        json!({"label": "pump 7", "imei_lock": true}),
    )
    .await;
    eventually(
        Duration::from_secs(30),
        "the update to complete at the provider and in the read model",
        || async {
            let row: Option<(Option<String>, bool)> =
                sqlx::query_as("SELECT label, imei_lock FROM sims WHERE iccid = $1")
                    .bind(&done)
                    .fetch_optional(&pool)
                    .await
                    .unwrap();
            harness.count("ProviderUpdateCompleted").await == 1 && row == Some((Some("pump 7".into()), true))
        },
    )
    .await;
    assert_eq!(harness.simulator().details(&done), (Some("pump 7".into()), true));
    let (requested, completed): (Value, Value) = sqlx::query_as(
        "SELECT r.metadata, c.metadata FROM events r JOIN events c ON c.aggregate_id = r.aggregate_id \
         WHERE r.event_type = 'ProviderUpdateRequested' AND c.event_type = 'ProviderUpdateCompleted'",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(completed["causation_id"], requested["command_id"]);
    // The provider now shows the platform's values: the next poll records nothing new.
    let head = harness.head().await;
    connector.poller.poll_once().await.unwrap();
    assert!(harness
        .events_of_after(head)
        .await
        .iter()
        .all(|(_, t)| t != "SimLabelChanged"));

    // 1NCE refuses changes to an expired SIM (422 and its message): the request fails with it.
    harness.simulator().expire_quota(&refused, QuotaKind::Data);
    patch(&commands, &token, &refused, json!({"label": "too late"})).await;
    eventually(Duration::from_secs(30), "the refused update to fail", || async {
        harness.count("ProviderUpdateFailed").await == 1
    })
    .await;
    let reason: String = sqlx::query_scalar(
        "SELECT payload->>'reason' FROM events WHERE event_type = 'ProviderUpdateFailed' AND aggregate_id = $1",
    )
    .bind(&refused)
    .fetch_one(&pool)
    .await
    .unwrap();
    assert!(reason.contains("expired and cannot be modified"), "{reason}");
    assert_ne!(
        harness.simulator().details(&refused).0.as_deref(),
        Some("too late")
    );
    let states: Vec<String> =
        sqlx::query_scalar("SELECT state FROM sync_dispatches WHERE kind = 'sim_update' ORDER BY state")
            .fetch_all(&pool)
            .await
            .unwrap();
    assert_eq!(states, ["completed", "failed"]);

    let _ = stop.send(true);
    while tasks.join_next().await.is_some() {}
    let _ = projecting.await;
    harness.cleanup().await;
}

#[sqlx::test(migrator = "eventstore::MIGRATOR")]
async fn a_pending_platform_change_wins_over_a_change_at_the_provider_and_is_carried_out(pool: PgPool) {
    let (harness, connector) = Harness::polled(pool.clone(), 5, 0, &[]).await;
    let iccid = harness.simulator().iccids()[0].clone();
    let store = EventStore::new(pool.clone());
    let request_id = request_label(&store, &iccid, "from the platform").await;
    // Meanwhile someone changes the label in the portal, and a poll sees it.
    harness
        .simulator()
        .set_details(&iccid, Some("from the portal"), None);
    connector.poller.poll_once().await.unwrap();
    let sim = store.load::<Sim>(&iccid).await.unwrap().state;
    assert_eq!(sim.label(), Some("from the platform"), "the pending change wins");

    // The pending change is carried out, overwriting the portal's label.
    let requested = requested_event(&store, &iccid, request_id).await;
    assert_eq!(
        connector.requests.handle(&requested).await.unwrap(),
        sync_connector::Disposition::Done
    );
    assert_eq!(
        harness.simulator().details(&iccid).0.as_deref(),
        Some("from the platform")
    );
    assert_eq!(harness.dispatch_state(request_id).await, "completed");
    let sim = store.load::<Sim>(&iccid).await.unwrap().state;
    assert!(sim.pending_update().is_none());
    // Provider and platform agree; a later portal change is recorded again.
    connector.poller.poll_once().await.unwrap();
    assert_eq!(
        store.load::<Sim>(&iccid).await.unwrap().state.label(),
        Some("from the platform")
    );
    harness
        .simulator()
        .set_details(&iccid, Some("portal, later"), None);
    connector.poller.poll_once().await.unwrap();
    assert_eq!(
        store.load::<Sim>(&iccid).await.unwrap().state.label(),
        Some("portal, later")
    );
    harness.cleanup().await;
}

/// Records an operator's label change and its provider update on `iccid`, as the command API
/// does; returns the request's id.
async fn request_label(store: &EventStore, iccid: &str, label: &str) -> Uuid {
    let request_id = Uuid::now_v7();
    let commands = vec![
        SimCommand::UpdateDetails {
            label: Some(Some(label.into())),
            tags: None,
        },
        SimCommand::RequestProviderUpdate {
            request_id,
            at: Utc::now(),
        },
    ];
    store
        .execute_with::<Sim, _>(
            iccid,
            iccid,
            &CommandContext::new(EventMetadata::new("user:operator")),
            |sim| handle_in_turn(sim, commands.clone()),
        )
        .await
        .unwrap();
    request_id
}

async fn requested_event(store: &EventStore, iccid: &str, request_id: Uuid) -> eventstore::StoredEvent {
    store
        .events_of("sim", iccid)
        .await
        .unwrap()
        .into_iter()
        .find(|e| {
            e.event_type == "ProviderUpdateRequested" && e.payload["request_id"] == request_id.to_string()
        })
        .unwrap()
}

#[sqlx::test(migrator = "eventstore::MIGRATOR")]
async fn an_update_left_dispatching_by_a_dead_instance_is_read_back_and_a_superseded_one_is_not_sent(
    pool: PgPool,
) {
    let (harness, connector) = Harness::polled(pool.clone(), 5, 0, &[]).await;
    let iccids = harness.simulator().iccids();
    let store = EventStore::new(pool.clone());
    let dead_instance = |request_id: Uuid, iccid: String| {
        let pool = pool.clone();
        async move {
            sqlx::query(
                "INSERT INTO sync_dispatches (request_id, kind, aggregate_id, iccid, state, owner, before_call, dispatched_at, attempts) \
                 VALUES ($1, 'sim_update', $2, $2, 'dispatching', $3, '{}', now(), 1)",
            )
            .bind(request_id)
            .bind(&iccid)
            .bind(Uuid::new_v4())
            .execute(&pool)
            .await
            .unwrap();
        }
    };

    // The dead instance's PUT took effect: the provider shows the values, so it completes.
    let (took, lost) = (iccids[0].clone(), iccids[1].clone());
    let took_id = request_label(&store, &took, "put before the crash").await;
    let lock = store.load::<Sim>(&took).await.unwrap().state.imei_lock();
    harness
        .simulator()
        .set_details(&took, Some("put before the crash"), Some(lock));
    dead_instance(took_id, took.clone()).await;
    let event = requested_event(&store, &took, took_id).await;
    assert_eq!(
        connector.requests.handle(&event).await.unwrap(),
        sync_connector::Disposition::Done
    );
    assert_eq!(harness.dispatch_state(took_id).await, "completed");

    // Its PUT never left: the provider does not show the values, so it is sent now.
    let lost_id = request_label(&store, &lost, "never sent").await;
    dead_instance(lost_id, lost.clone()).await;
    let event = requested_event(&store, &lost, lost_id).await;
    connector.requests.handle(&event).await.unwrap();
    assert_eq!(harness.dispatch_state(lost_id).await, "completed");
    assert_eq!(
        harness.simulator().details(&lost).0.as_deref(),
        Some("never sent")
    );
    assert_eq!(harness.count("ProviderUpdateCompleted").await, 2);

    // A second change before the first was carried out: only the second goes to 1NCE.
    let twice = iccids[2].clone();
    let first = request_label(&store, &twice, "first").await;
    let second = request_label(&store, &twice, "second").await;
    let before = harness.simulator().details(&twice).0;
    connector
        .requests
        .handle(&requested_event(&store, &twice, first).await)
        .await
        .unwrap();
    assert_eq!(
        harness.simulator().details(&twice).0,
        before,
        "superseded: not sent"
    );
    connector
        .requests
        .handle(&requested_event(&store, &twice, second).await)
        .await
        .unwrap();
    assert_eq!(harness.simulator().details(&twice).0.as_deref(), Some("second"));
    assert_eq!(harness.count("ProviderUpdateCompleted").await, 3);
    harness.cleanup().await;
}
