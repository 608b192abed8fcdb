//! Operator requests from the command API carried out at the simulator and confirmed, through
//! the real relay, JetStream, the connector's consumers and the projector.

use std::time::Duration;

use crate::common::Harness;
use projectors::{ConsumerSettings, Projector, ProjectorMetrics, ProjectorSettings};
use readmodel::{Cache, CacheConfig};
use reqwest::StatusCode;
use serde_json::{json, Value};
use sqlx::PgPool;
use testkit::{eventually, CommandApi};
use tokio::sync::watch;

pub(crate) async fn projector(harness: &Harness) -> Projector {
    let metrics = platform::Metrics::new();
    let cache = Cache::connect(CacheConfig::new(
        "redis://127.0.0.1:6379",
        format!("test-{}", harness.prefix),
    ))
    .await;
    Projector::new(
        harness.pool.clone(),
        harness.nats.clone(),
        cache,
        ProjectorMetrics::register(metrics.registry()),
        ProjectorSettings {
            name: "read-models".into(),
            stream: harness.stream.clone(),
            filter_subject: format!("{}.v1.>", harness.prefix),
            subject_prefix: harness.prefix.clone(),
            consumer: ConsumerSettings {
                ack_wait: Duration::from_secs(5),
                max_ack_pending: 256,
                batch: 64,
                batch_wait: Duration::from_millis(2),
            },
            message_limit: None,
            share: eventstore::Share::WHOLE,
        },
    )
    .await
    .unwrap()
}

#[sqlx::test(migrator = "eventstore::MIGRATOR")]
async fn top_ups_and_sms_from_the_command_api_end_completed_at_the_provider_and_in_the_read_models(
    pool: PgPool,
) {
    let (harness, connector) =
        Harness::polled(pool.clone(), 5, 10, &[("SYNC_REQUESTS_PER_SECOND", "9")]).await;
    let (_relay_stop, _relay) = harness.start_relay();
    let (stop, shutdown) = watch::channel(false);
    let mut tasks = connector.spawn(shutdown.clone());
    let projector = projector(&harness).await;
    let projecting = tokio::spawn(async move { projector.run(shutdown).await });

    let (commands, token) = CommandApi::start_as_admin(pool.clone()).await;
    let iccid = harness.simulator().iccids()[1].clone();
    let ask = |path: String, body: Value| commands.post(&path, &token).json(&body).send();
    let topup = ask(format!("/sims/{iccid}/topup"), json!({"quota": "data"}))
        .await
        .unwrap();
    assert_eq!(topup.status(), StatusCode::ACCEPTED, "{:?}", topup.text().await);
    let sms = ask(format!("/sims/{iccid}/sms"), json!({"payload": "reboot now"}))
        .await
        .unwrap();
    assert_eq!(sms.status(), StatusCode::ACCEPTED);

    eventually(
        Duration::from_secs(60),
        "the top-up and the SMS to settle in the read models",
        || async {
            let topup: Option<String> = sqlx::query_scalar(
                "SELECT last_topup_status FROM sim_quotas WHERE iccid = $1 AND kind = 'data'",
            )
            .bind(&iccid)
            .fetch_optional(&pool)
            .await
            .unwrap()
            .flatten();
            let sms: Option<String> =
                sqlx::query_scalar("SELECT status FROM sms_messages WHERE iccid = $1 AND direction = 'MT'")
                    .bind(&iccid)
                    .fetch_optional(&pool)
                    .await
                    .unwrap();
            topup.as_deref() == Some("completed") && matches!(sms.as_deref(), Some("submitted" | "delivered"))
        },
    )
    .await;
    assert_eq!(harness.simulator().top_ups(&iccid), 1);
    let sent = harness.simulator().mt_sms(&iccid);
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].1, "reboot now");
    assert_eq!(harness.count("TopUpCompleted").await, 1);
    assert_eq!(harness.count("SmsSubmitted").await, 1);
    // The confirmation is correlated with the operator's request.
    let (requested, completed): (Value, Value) = sqlx::query_as(
        "SELECT r.metadata, c.metadata FROM events r JOIN events c ON c.aggregate_id = r.aggregate_id \
         WHERE r.event_type = 'TopUpRequested' AND c.event_type = 'TopUpCompleted'",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(completed["correlation_id"], requested["correlation_id"]);
    assert_eq!(completed["causation_id"], requested["command_id"]);
    assert_eq!(completed["actor"], "connector:sync");

    // A suspension goes the same way, on a SIM that is enabled at the provider.
    let store = eventstore::EventStore::new(pool.clone());
    let mut enabled = None;
    for candidate in harness.simulator().iccids() {
        let sim = store.load::<domain::Sim>(&candidate).await.unwrap().state;
        if sim.provider_status() == Some(domain::ProviderStatus::Enabled) {
            enabled = Some(candidate);
            break;
        }
    }
    let enabled = enabled.expect("the simulated fleet has an enabled SIM");
    let suspend = commands
        .post(&format!("/sims/{enabled}/suspend"), &token)
        .send()
        .await
        .unwrap();
    assert_eq!(
        suspend.status(),
        StatusCode::ACCEPTED,
        "{:?}",
        suspend.text().await
    );
    eventually(Duration::from_secs(30), "the suspension to complete", || async {
        harness.count("SuspensionCompleted").await == 1
    })
    .await;
    let at_provider = connector.client.sim(&enabled).await.unwrap();
    assert_eq!(at_provider.status, Some(once_client::SimState::Disabled));

    let _ = stop.send(true);
    while tasks.join_next().await.is_some() {}
    let _ = projecting.await;
    harness.cleanup().await;
}

#[sqlx::test(migrator = "eventstore::MIGRATOR")]
async fn a_top_up_whose_call_may_not_have_left_ends_unknown_and_is_not_sent(pool: PgPool) {
    let (harness, connector) = Harness::polled(pool.clone(), 2, 0, &[]).await;
    let iccid = harness.simulator().iccids()[0].clone();
    let store = eventstore::EventStore::new(pool.clone());
    let (quota_id, request_id) = harness.request_top_up(&iccid, domain::SimStatus::Active).await;
    // An instance recorded the dispatch and died before its call left (or while it did): the
    // provider's quota is what it was before.
    let before = connector
        .client
        .quota(&iccid, once_client::QuotaKind::Data)
        .await
        .unwrap();
    sqlx::query(
        "INSERT INTO sync_dispatches (request_id, kind, aggregate_id, iccid, state, owner, before_call, dispatched_at, attempts) \
         VALUES ($1, 'topup', $2, $3, 'dispatching', $4, $5, now(), 1)",
    )
    .bind(request_id)
    .bind(&quota_id)
    .bind(&iccid)
    .bind(uuid::Uuid::new_v4())
    .bind(json!({"quota": {"total": before.total, "remaining": before.remaining,
                 "last_volume_added": before.last_volume_added, "last_change": before.last_status_change_date}}))
    .execute(&pool)
    .await
    .unwrap();
    let requested = store
        .events_of("quota", &quota_id)
        .await
        .unwrap()
        .into_iter()
        .find(|e| e.event_type == "TopUpRequested")
        .unwrap();

    let handled = connector.requests.handle(&requested).await.unwrap();
    assert_eq!(handled, sync_connector::Disposition::Done);
    assert_eq!(harness.simulator().top_ups(&iccid), 0, "never sent blindly");
    assert_eq!(harness.count("TopUpOutcomeUnknown").await, 1);
    let quota = store.load::<domain::Quota>(&quota_id).await.unwrap().state;
    assert!(quota.pending_top_up().is_none(), "an operator may ask again");
    assert_eq!(harness.dispatch_state(request_id).await, "unknown");
    // Delivered again, it changes nothing.
    assert_eq!(
        connector.requests.handle(&requested).await.unwrap(),
        sync_connector::Disposition::Done
    );
    assert_eq!(harness.count("TopUpOutcomeUnknown").await, 1);
    harness.cleanup().await;
}
