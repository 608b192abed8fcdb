//! The Data Streamer receiver's applier: records of SIMs the platform does not know wait for
//! their registration; events change connectivity, status and quotas; SMS count MO and MT.

use std::collections::BTreeMap;

use domain::{Quota, QuotaKind, SimStatus};
use serde_json::{json, Value};
use sqlx::PgPool;

use crate::streamer::{data_batch, data_record, day_start, event_record, Streamer};

#[sqlx::test(migrator = "eventstore::MIGRATOR")]
async fn records_of_an_unknown_sim_wait_for_its_registration(pool: PgPool) {
    let streamer = Streamer::start(pool, 3, false, &[]).await;
    let iccids = streamer.harness.simulator().iccids();
    let (records, expected) = data_batch(&iccids, 30, 1);
    assert_eq!(streamer.post(&records).await.1["accepted"], json!(30));
    streamer.drain().await;
    assert_eq!(
        streamer.states().await,
        BTreeMap::from([("pending".to_owned(), 30)])
    );
    assert_eq!(
        streamer.connector.applier.release_registered(100).await.unwrap(),
        0
    );

    // The poll registers the fleet; the pending records are then applied.
    streamer.connector.poller.poll_once().await.unwrap();
    assert_eq!(
        streamer.connector.applier.release_registered(100).await.unwrap(),
        30
    );
    streamer.drain().await;
    assert_eq!(
        streamer.states().await,
        BTreeMap::from([("applied".to_owned(), 30)])
    );
    streamer.assert_data_bytes(expected).await;
    streamer.harness.cleanup().await;
}

#[sqlx::test(migrator = "eventstore::MIGRATOR")]
async fn events_update_connectivity_status_and_quotas_and_sms_counts_mo_and_mt(pool: PgPool) {
    let streamer = Streamer::start(pool, 2, true, &[]).await;
    let iccids = streamer.connector.poller.last_seen().all_iccids().await.unwrap();
    let (a, b) = (iccids[0].as_str(), iccids[1].as_str());
    let pdp = json!({"id": 2, "name": "Vodafone", "country": {"id": 74, "name": "Germany", "iso_code": "de"},
                     "pdp_context": {"rat_type": 6, "ue_ip_address": "10.64.0.9", "apn": "iot.1nce.net"}});
    let location =
        json!({"id": 3, "name": "Orange", "country": {"name": "France"}, "mnc": [{"id": 1, "mnc": "01"}]});
    let sms = |id: i64, tx: &str, rx: &str| {
        let mut record = data_record(id, b, 0);
        record["traffic_type"] = json!({"id": 6, "description": "SMS"});
        record["volume"] = json!({"total": 1.0, "tx": tx, "rx": rx});
        record
    };
    let records = vec![
        event_record(10, Some(a), 3, "2026-01-15T12:00:00.000Z", pdp),
        // Older than the PDP event, arriving later in the same batch: applied first, then overridden.
        event_record(11, Some(a), 1, "2026-01-15T11:00:00Z", location.clone()),
        event_record(12, Some(b), 9, "2026-01-15T12:00:00Z", Value::Null),
        event_record(
            13,
            Some(a),
            19,
            "2026-01-15T12:00:00Z",
            json!({"quota": {"volume": "0.015085"}}),
        ),
        event_record(
            19,
            Some(b),
            18,
            "2026-01-15T12:00:00Z",
            json!({"quota": {"threshold_percentage": 20}}),
        ),
        event_record(14, Some(a), 77, "2026-01-15 12:00:00", json!("not json {")),
        event_record(15, None, 52, "2026-01-15T12:00:00Z", Value::Null),
        sms(16, "1.0", "0.0"),
        sms(17, "0", "1"),
        sms(18, "0.0", "1.0"),
    ];
    let (status, answer) = streamer.post(&records).await;
    assert_eq!((status, &answer["accepted"]), (200, &json!(10)), "{answer}");
    streamer.drain().await;

    let sim_a = streamer.sim(a).await;
    let c = sim_a.connectivity();
    assert_eq!(
        (
            c.network.as_deref(),
            c.country.as_deref(),
            c.rat.as_deref(),
            c.ip_address.as_deref()
        ),
        (Some("Vodafone"), Some("Germany"), Some("4G"), Some("10.64.0.9"))
    );
    assert_eq!(streamer.sim(b).await.status(), SimStatus::Suspended);
    let data_quota = |iccid: &str| {
        let id = domain::quota_aggregate_id(&domain::Iccid::parse(iccid).unwrap(), QuotaKind::Data);
        let store = streamer.store();
        async move { store.load::<Quota>(&id).await.unwrap().state }
    };
    assert_eq!(data_quota(a).await.remaining(), 0);
    let quota_b = data_quota(b).await;
    assert!(quota_b.remaining() * 5 <= quota_b.total(), "{quota_b:?}");
    assert!(quota_b.thresholds_emitted().contains(&80), "{quota_b:?}");
    let usage = streamer.sim(b).await.usage_for(day_start()).cloned().unwrap();
    assert_eq!((usage.sms_mo, usage.sms_mt), (1, 2));

    // A location update older than the PDP event applied before it is superseded.
    let late = event_record(20, Some(a), 1, "2026-01-15T11:30:00Z", location);
    assert_eq!(streamer.post(&[late]).await.1["accepted"], json!(1));
    streamer.drain().await;
    assert_eq!(
        streamer.sim(a).await.connectivity().network.as_deref(),
        Some("Vodafone")
    );
    let states = streamer.states().await;
    assert_eq!((states["applied"], states["skipped"]), (8, 3), "{states:?}");
    streamer.harness.cleanup().await;
}

#[sqlx::test(migrator = "eventstore::MIGRATOR")]
async fn a_record_resent_after_its_retention_changes_nothing(pool: PgPool) {
    let streamer = Streamer::start(pool, 2, true, &[]).await;
    let iccids = streamer.connector.poller.last_seen().all_iccids().await.unwrap();
    let (records, expected) = data_batch(&iccids, 20, 1);
    assert_eq!(streamer.post(&records).await.1["accepted"], json!(20));
    streamer.drain().await;
    let head = streamer.harness.head().await;

    // Settled long ago: the retention deletes them; a late resend is stored again.
    sqlx::query("UPDATE streamer_records SET settled_at = now() - interval '40 days'")
        .execute(&streamer.harness.pool)
        .await
        .unwrap();
    let inbox = streamer.connector.applier.inbox();
    let before = chrono::Utc::now() - chrono::Duration::days(30);
    assert_eq!(inbox.forget_settled(before, 10_000).await.unwrap(), 20);
    assert!(streamer.states().await.is_empty());
    assert_eq!(streamer.post(&records).await.1["accepted"], json!(20));
    streamer.drain().await;

    // Applied again as far as the inbox knows, but the event store kept every key.
    assert_eq!(
        streamer.states().await,
        BTreeMap::from([("applied".to_owned(), 20)])
    );
    streamer.harness.assert_nothing_after(head).await;
    streamer.assert_data_bytes(expected).await;
    streamer.harness.cleanup().await;
}

/// Polling and the streamer report the same usage: the day's total is the larger of the polled
/// total and the streamed sum, whichever comes first, never their sum.
#[sqlx::test(migrator = "eventstore::MIGRATOR")]
async fn streamed_and_polled_usage_of_a_day_are_not_added_up(pool: PgPool) {
    let streamer = Streamer::start(pool, 1, true, &[("SYNC_DETAIL_INTERVAL_SECS", "1")]).await;
    let iccid = streamer.connector.poller.last_seen().all_iccids().await.unwrap()[0].clone();
    let poller = &streamer.connector.poller;
    let today = chrono::Utc::now().date_naive();
    let simulator = streamer.harness.simulator();
    let today_record = |id: i64, bytes: u64| {
        let mut record = data_record(id, &iccid, bytes);
        record["start_timestamp"] = json!(format!("{today}T00:00:01Z"));
        record["end_timestamp"] = json!(format!("{today}T00:00:02Z"));
        record
    };
    let day_total = || async {
        let start = today.and_time(chrono::NaiveTime::MIN).and_utc();
        streamer
            .sim(&iccid)
            .await
            .usage_for(start)
            .map_or(0, |u| u.data_bytes)
    };

    // The poll first: the provider's total already holds the session the stream then reports.
    simulator.add_usage(&iccid, today, 1_000_000, 0, 0);
    crate::common::poll_and_refresh_all(poller).await;
    assert_eq!(day_total().await, 1_000_000);
    assert_eq!(streamer.post(&[today_record(1, 1_000_000)]).await.0, 200);
    streamer.drain().await;
    assert_eq!(
        day_total().await,
        1_000_000,
        "the streamed session was counted twice"
    );

    // The stream first: two sessions streamed, then the poll shows the same total.
    simulator.add_usage(&iccid, today, 700_000, 0, 0);
    assert_eq!(
        streamer
            .post(&[today_record(2, 400_000), today_record(3, 300_000)])
            .await
            .0,
        200
    );
    streamer.drain().await;
    assert_eq!(day_total().await, 1_700_000);
    crate::common::poll_and_refresh_all(poller).await;
    assert_eq!(
        day_total().await,
        1_700_000,
        "the polled total was added to the streamed one"
    );

    // The stream ahead of a poll whose answer is older: the recorded total does not go back.
    assert_eq!(streamer.post(&[today_record(4, 50_000)]).await.0, 200);
    streamer.drain().await;
    assert_eq!(day_total().await, 1_750_000);
    simulator.add_usage(&iccid, today, 20_000, 0, 0);
    crate::common::poll_and_refresh_all(poller).await;
    assert_eq!(day_total().await, 1_750_000);
    // And the poll, once the provider's total passes the streamed sum, brings the total to it.
    simulator.add_usage(&iccid, today, 100_000, 0, 0);
    crate::common::poll_and_refresh_all(poller).await;
    assert_eq!(day_total().await, 1_820_000);
    streamer.harness.cleanup().await;
}
