//! Polling against the simulator: the first poll registers the fleet, a poll with nothing new
//! issues nothing, and each change at the provider becomes exactly its events.

use std::time::Duration;

use crate::common::{poll_and_refresh_all, Harness};
use chrono::Utc;
use domain::{ProviderStatus, Sim};
use eventstore::EventStore;
use once_simulator::QuotaKind;
use sqlx::PgPool;

#[sqlx::test(migrator = "eventstore::MIGRATOR")]
async fn polls_register_the_fleet_then_record_exactly_what_changed(pool: PgPool) {
    let harness = Harness::new(pool.clone(), 1000, 0, &[("SYNC_DETAIL_INTERVAL_SECS", "1")]).await;
    let connector = harness.connector().await;
    let poller = &connector.poller;

    // First poll: every SIM registered exactly once, with its quotas.
    let first = poller.poll_once().await.unwrap();
    assert!(first.complete);
    assert_eq!(first.sims_new, 1000);
    assert_eq!(harness.count("SimRegistered").await, 1000);
    let registered: i64 = sqlx::query_scalar(
        "SELECT count(DISTINCT aggregate_id) FROM events WHERE event_type = 'SimRegistered'",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(registered, 1000);
    assert_eq!(
        harness.count("QuotaAssigned").await,
        2000,
        "a data and an SMS quota per SIM"
    );

    // A second poll, and a round-robin over every SIM, with nothing changed: nothing issued.
    let head = harness.head().await;
    let second = poller.poll_once().await.unwrap();
    assert_eq!(
        (second.sims_new, second.sims_changed, second.events_recorded),
        (0, 0, 0)
    );
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let round = poller.refresh_round_robin(i64::MAX).await.unwrap();
    assert_eq!(round.sims_seen, 1000);
    harness.assert_nothing_after(head).await;

    // Changes at the provider: a status, usage, quota consumption to 85 %, an MO SMS.
    let iccids = harness.simulator().iccids();
    let (flipped, used, consumed, texted) = (&iccids[10], &iccids[20], &iccids[30], &iccids[40]);
    let store = EventStore::new(pool.clone());
    let before = store.load::<Sim>(flipped).await.unwrap().state.provider_status();
    harness
        .simulator()
        .set_status(flipped, before != Some(ProviderStatus::Enabled));
    harness
        .simulator()
        .add_usage(used, Utc::now().date_naive(), 5_000_000, 0, 0);
    harness
        .simulator()
        .consume_quota_to(consumed, QuotaKind::Data, 85.0);
    harness.simulator().receive_mo_sms(texted, "temp=21");

    poll_and_refresh_all(poller).await;
    let changes = harness.events_of_after(head).await;
    let of = |iccid: &str, event_type: &str| {
        changes
            .iter()
            .filter(|(aggregate, t)| aggregate.starts_with(iccid) && t == event_type)
            .count()
    };
    assert_eq!(of(flipped, "ProviderStatusChanged"), 1, "{changes:?}");
    assert_eq!(of(used, "UsageRecorded"), 1, "{changes:?}");
    assert_eq!(of(consumed, "QuotaThresholdCrossed"), 1, "{changes:?}");
    let received: Vec<_> = changes.iter().filter(|(_, t)| t == "SmsReceived").collect();
    assert_eq!(received.len(), 1, "{changes:?}");
    let threshold: serde_json::Value = sqlx::query_scalar(
        "SELECT payload FROM events WHERE event_type = 'QuotaThresholdCrossed' AND position > $1",
    )
    .bind(head)
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(threshold["threshold"], 80);
    // Nothing but what these changes imply: the flipped SIM's status (and its connectivity,
    // which a status change moves), the used SIM's usage and quota, the consumed quota, and
    // the texted SIM's message, which counts as its usage and uses its SMS quota. No other SIM
    // is touched, nothing is registered again.
    let touched: std::collections::BTreeSet<(&str, &str)> = changes
        .iter()
        .filter(|(_, t)| t != "SmsReceived")
        .map(|(aggregate, t)| (&aggregate[..19], t.as_str()))
        .collect();
    let allowed: std::collections::BTreeSet<(&str, &str)> = [
        (flipped.as_str(), "ProviderStatusChanged"),
        (flipped.as_str(), "ConnectivityChanged"),
        (used.as_str(), "UsageRecorded"),
        (used.as_str(), "QuotaConsumptionRecorded"),
        (consumed.as_str(), "QuotaConsumptionRecorded"),
        (consumed.as_str(), "QuotaThresholdCrossed"),
        (texted.as_str(), "UsageRecorded"),
        (texted.as_str(), "QuotaConsumptionRecorded"),
    ]
    .into_iter()
    .collect();
    assert!(touched.is_subset(&allowed), "{changes:?}");

    // And once more: those changes are not recorded twice.
    let head = harness.head().await;
    poll_and_refresh_all(poller).await;
    harness.assert_nothing_after(head).await;
    harness.cleanup().await;
}

#[sqlx::test(migrator = "eventstore::MIGRATOR")]
async fn a_status_that_changes_back_is_recorded_both_times(pool: PgPool) {
    let (harness, connector) = Harness::polled(pool.clone(), 5, 0, &[]).await;
    let iccid = harness.simulator().iccids()[0].clone();
    let store = EventStore::new(pool.clone());
    let start = store.load::<Sim>(&iccid).await.unwrap().state.provider_status();
    let enabled = start == Some(ProviderStatus::Enabled);
    // Enabled → Disabled → Enabled (or the reverse): the second change repeats the first
    // observation, at a later version, and must not be taken for a duplicate.
    harness.simulator().set_status(&iccid, !enabled);
    connector.poller.poll_once().await.unwrap();
    harness.simulator().set_status(&iccid, enabled);
    connector.poller.poll_once().await.unwrap();
    harness.simulator().set_status(&iccid, !enabled);
    connector.poller.poll_once().await.unwrap();
    let changes: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM events WHERE aggregate_id = $1 AND event_type = 'ProviderStatusChanged'",
    )
    .bind(&iccid)
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(changes, 4, "the first record plus three changes");
    assert_eq!(
        store.load::<Sim>(&iccid).await.unwrap().state.provider_status(),
        Some(if enabled {
            ProviderStatus::Disabled
        } else {
            ProviderStatus::Enabled
        })
    );
    harness.cleanup().await;
}

#[sqlx::test(migrator = "eventstore::MIGRATOR")]
async fn a_sweep_cut_short_by_a_failing_page_concludes_nothing(pool: PgPool) {
    let harness = Harness::new(pool.clone(), 250, 0, &[("SYNC_PROVIDER_MAX_RETRIES", "1")]).await;
    let connector = harness.connector().await;
    connector.poller.sweep_list().await.unwrap();
    assert_eq!(harness.count("SimRegistered").await, 250);
    // Every call fails: the sweep is abandoned with an error, and nothing is recorded.
    harness.simulator().set_faults(once_simulator::Faults {
        error_500_share: 1.0,
        ..Default::default()
    });
    let head = harness.head().await;
    assert!(connector.poller.sweep_list().await.is_err());
    assert_eq!(harness.head().await, head);
    let known: i64 = sqlx::query_scalar("SELECT count(*) FROM sync_sims")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(known, 250, "no SIM is forgotten because a sweep failed");
    harness.cleanup().await;
}

#[sqlx::test(migrator = "eventstore::MIGRATOR")]
async fn sync_jobs_run_once_per_shard_and_report_progress(pool: PgPool) {
    let harness = Harness::new(pool.clone(), 12, 0, &[]).await;
    let connector = harness.connector().await;
    let iccid = harness.simulator().iccids()[3].clone();
    let one = uuid::Uuid::now_v7();
    let all = uuid::Uuid::now_v7();
    for (job, scope) in [(one, iccid.as_str()), (all, "all")] {
        sqlx::query("INSERT INTO sync_jobs (job_id, scope, requested_by) VALUES ($1, $2, 'user:test')")
            .bind(job)
            .bind(scope)
            .execute(&pool)
            .await
            .unwrap();
    }
    assert_eq!(connector.jobs.run_waiting().await.unwrap(), 2);
    assert_eq!(
        connector.jobs.run_waiting().await.unwrap(),
        0,
        "each job runs once"
    );
    let runs: Vec<(uuid::Uuid, String, i32, i32)> =
        sqlx::query_as("SELECT job_id, status, sims_total, sims_done FROM sync_job_runs ORDER BY job_id")
            .fetch_all(&pool)
            .await
            .unwrap();
    assert_eq!(
        runs,
        vec![(one, "completed".into(), 1, 1), (all, "completed".into(), 12, 12)]
    );
    // The one-SIM job registered its SIM with its quotas before the full sweep ran.
    assert_eq!(harness.count("SimRegistered").await, 12);
    let quotas: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM events WHERE event_type = 'QuotaAssigned' AND aggregate_id LIKE $1",
    )
    .bind(format!("{iccid}%"))
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(quotas, 2);
    harness.cleanup().await;
}

#[sqlx::test(migrator = "eventstore::MIGRATOR")]
async fn two_shards_split_the_fleet_without_overlap(pool: PgPool) {
    let harness = Harness::new(pool.clone(), 60, 0, &[]).await;
    let shard = |index: &str| {
        let mut env = harness.env.clone();
        env.insert("SYNC_SHARD_COUNT".into(), "2".into());
        env.insert("SYNC_SHARD_INDEX".into(), index.into());
        sync_connector::Config::from_lookup(|key| env.get(key).cloned()).unwrap()
    };
    let first = sync_connector::Connector::new(shard("0"), pool.clone(), harness.nats.clone())
        .await
        .unwrap();
    let second = sync_connector::Connector::new(shard("1"), pool.clone(), harness.nats.clone())
        .await
        .unwrap();
    // Both at once, as two instances would run.
    let (a, b) = tokio::join!(first.poller.poll_once(), second.poller.poll_once());
    let (a, b) = (a.unwrap(), b.unwrap());
    assert_eq!(
        a.sims_new + b.sims_new,
        60,
        "every SIM registered by exactly one shard"
    );
    assert!(
        a.sims_new > 10 && b.sims_new > 10,
        "both shards got a share: {a:?} {b:?}"
    );
    assert_eq!(harness.count("SimRegistered").await, 60);
    let per_shard: Vec<(String, i64)> =
        sqlx::query_as("SELECT shard, count(*) FROM sync_sims GROUP BY shard ORDER BY shard")
            .fetch_all(&pool)
            .await
            .unwrap();
    assert_eq!(per_shard.len(), 2);
    assert_eq!(per_shard[0].1 as u64, a.sims_new);
    assert_eq!(per_shard[1].1 as u64, b.sims_new);
    // Each quota assigned once: no SIM was refreshed by both.
    let duplicates: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM (SELECT aggregate_id FROM events WHERE event_type = 'QuotaAssigned' \
         GROUP BY aggregate_id HAVING count(*) > 1) d",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(duplicates, 0);
    harness.cleanup().await;
}
