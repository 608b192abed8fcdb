//! Network events from polling: with the Data Streamer off, the per-SIM refresh reads
//! `GET /v1/sims/{iccid}/events` past its cursor and the streamer's applier applies them,
//! each once and in order; with the streamer on, the endpoint is not called.

use std::collections::BTreeMap;
use std::time::Duration;

use domain::{Sim, SimStatus};
use eventstore::EventStore;
use once_client::Priority;
use sqlx::PgPool;
use sync_connector::Connector;

use crate::common::Harness;

const EVENTS_ROUTE: &str = "/v1/sims/{iccid}/events";

/// One per-SIM refresh, then everything it handed to the applier applied.
async fn refresh(connector: &Connector, iccid: &str) {
    connector
        .poller
        .refresh_sim(iccid, Priority::Background)
        .await
        .unwrap();
    while connector.applier.apply_waiting().await.unwrap() > 0 {}
}

/// The inbox's records by state.
async fn states(connector: &Connector) -> BTreeMap<String, i64> {
    connector
        .applier
        .inbox()
        .counts()
        .await
        .unwrap()
        .into_iter()
        .collect()
}

fn applied(n: i64) -> BTreeMap<String, i64> {
    BTreeMap::from([("applied".to_owned(), n)])
}

/// The SIM's provider statuses as recorded, oldest first.
async fn provider_statuses(pool: &PgPool, iccid: &str) -> Vec<String> {
    sqlx::query_scalar(
        "SELECT payload->>'to' FROM events WHERE aggregate_id = $1 \
         AND event_type = 'ProviderStatusChanged' ORDER BY position",
    )
    .bind(iccid)
    .fetch_all(pool)
    .await
    .unwrap()
}

#[sqlx::test(migrator = "eventstore::MIGRATOR")]
async fn polled_events_apply_once_in_order_across_refreshes_and_a_restart(pool: PgPool) {
    let (harness, connector) = Harness::polled(pool.clone(), 1, 0, &[]).await;
    let sim = harness.simulator();
    let iccid = sim.iccids()[0].clone();
    let calls = || sim.stats().count("GET", EVENTS_ROUTE);
    let before = calls();

    // The poll's refresh of the new SIM only set the cursor; with nothing new since, a refresh
    // makes one call and stores nothing.
    refresh(&connector, &iccid).await;
    assert_eq!(calls() - before, 1);
    let synced = connector.poller.last_seen().get(&iccid).await.unwrap().unwrap();
    let cursor = synced.events_cursor;
    assert!(cursor.is_some());
    assert!(states(&connector).await.is_empty());
    let statuses_before = provider_statuses(&pool, &iccid).await;

    // Suspended, a new location, enabled again: three events, a minute apart.
    sim.advance(Duration::from_secs(60));
    sim.set_status(&iccid, false);
    sim.advance(Duration::from_secs(60));
    sim.set_imei(&iccid, "356938035643809");
    sim.advance(Duration::from_secs(60));
    sim.set_status(&iccid, true);

    refresh(&connector, &iccid).await;
    assert_eq!(calls() - before, 2, "one page held every new event");
    assert_eq!(states(&connector).await, applied(3));
    let statuses = provider_statuses(&pool, &iccid).await;
    assert_eq!(
        statuses[statuses_before.len()..],
        ["Disabled".to_owned(), "Enabled".to_owned()],
        "applied in the order they happened: {statuses:?}"
    );
    let state = EventStore::new(pool.clone())
        .load::<Sim>(&iccid)
        .await
        .unwrap()
        .state;
    assert_eq!(state.status(), SimStatus::Active);

    // Nothing new: one call.
    refresh(&connector, &iccid).await;
    assert_eq!(calls() - before, 3);
    assert_eq!(states(&connector).await, applied(3));

    // The cursor lost (as by a crash between storing the events and saving it): the same
    // events are read again and ignored by their keys.
    sqlx::query("UPDATE sync_sims SET events_cursor = $2 WHERE iccid = $1")
        .bind(&iccid)
        .bind(cursor)
        .execute(&pool)
        .await
        .unwrap();
    refresh(&connector, &iccid).await;
    assert_eq!(calls() - before, 4);
    assert_eq!(states(&connector).await, applied(3));
    assert_eq!(provider_statuses(&pool, &iccid).await, statuses);

    // A restart keeps the cursor: nothing is applied twice, a later event is.
    drop(connector);
    let connector = harness.connector().await;
    refresh(&connector, &iccid).await;
    assert_eq!(calls() - before, 5);
    assert_eq!(states(&connector).await, applied(3));
    assert_eq!(provider_statuses(&pool, &iccid).await, statuses);
    sim.advance(Duration::from_secs(60));
    sim.set_status(&iccid, false);
    refresh(&connector, &iccid).await;
    assert_eq!(states(&connector).await, applied(4));
    let after = provider_statuses(&pool, &iccid).await;
    assert_eq!(after.last().map(String::as_str), Some("Disabled"));
    harness.cleanup().await;
}

#[sqlx::test(migrator = "eventstore::MIGRATOR")]
async fn with_the_streamer_configured_the_events_endpoint_is_not_called(pool: PgPool) {
    let (harness, connector) = Harness::polled(pool, 2, 0, &[("STREAMER_BASIC_AUTH", "1nce:secret")]).await;
    let sim = harness.simulator();
    for iccid in sim.iccids() {
        refresh(&connector, &iccid).await;
        sim.set_status(&iccid, false);
        refresh(&connector, &iccid).await;
    }
    let stats = sim.stats();
    assert!(stats.count("GET", "/v1/sims/{iccid}/status") >= 4, "{stats:?}");
    assert_eq!(stats.count("GET", EVENTS_ROUTE), 0, "{stats:?}");
    assert!(states(&connector).await.is_empty());
    harness.cleanup().await;
}
