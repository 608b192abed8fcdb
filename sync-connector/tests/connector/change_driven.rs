//! Change-driven polling (issue 13, point 3): a SIM gets only the per-SIM calls its list entry
//! (or a streamer record) points at, every SIM a full refresh once a day (the safety net), a
//! closed day's usage ends at the provider's polled total, and what is due survives a restart.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{NaiveTime, Utc};
use once_simulator::CallStats;
use serde_json::json;
use sqlx::PgPool;
use sync_connector::poll::Parts;

use crate::common::Harness;
use crate::streamer::{data_record, Streamer};

/// Per-SIM calls by route (the list and the token left out).
fn per_sim_calls(stats: &CallStats) -> BTreeMap<String, u64> {
    let mut calls = BTreeMap::new();
    for route in &stats.by_route {
        if route.route.starts_with("/v1/sims/{iccid}") {
            *calls
                .entry(format!("{} {}", route.method, route.route))
                .or_default() += route.count;
        }
    }
    calls
}

const USAGE: &str = "GET /v1/sims/{iccid}/usage";
const DATA_QUOTA: &str = "GET /v1/sims/{iccid}/quota/data";

/// A SIM whose quotas both have more than 20 % left (level 0 in the list).
async fn quiet_sim(pool: &PgPool) -> String {
    sqlx::query_scalar(
        "SELECT iccid FROM sync_sims WHERE list_entry->>'data_status' = '0' \
         AND list_entry->>'sms_status' = '0' ORDER BY iccid LIMIT 1",
    )
    .fetch_one(pool)
    .await
    .unwrap()
}

async fn due_parts(pool: &PgPool, iccid: &str) -> i32 {
    sqlx::query_scalar("SELECT due_parts FROM sync_sims WHERE iccid = $1")
        .bind(iccid)
        .fetch_one(pool)
        .await
        .unwrap()
}

#[sqlx::test(migrator = "eventstore::MIGRATOR")]
async fn a_sweep_calls_only_what_a_moved_list_entry_points_at(pool: PgPool) {
    let (harness, connector) = Harness::polled(pool.clone(), 30, 0, &[]).await;
    let poller = &connector.poller;
    let simulator = harness.simulator();

    // Nothing moved: a whole poll is the list alone.
    simulator.reset_stats();
    let quiet = poller.poll_once().await.unwrap();
    assert_eq!(quiet.sims_changed, 0);
    let stats = simulator.stats();
    assert_eq!(per_sim_calls(&stats), BTreeMap::new(), "{stats:?}");
    assert_eq!(stats.count("GET", "/v1/sims"), 1);

    // One SIM used data up to its last 20 %: its data quota's level moved in the list; it
    // gets its usage and data quota (2 calls), no other part, and no other SIM any call.
    let iccid = quiet_sim(&pool).await;
    simulator.add_usage(&iccid, Utc::now().date_naive(), 3_000_000, 0, 0);
    simulator.consume_quota_to(&iccid, once_simulator::QuotaKind::Data, 85.0);
    let head = harness.head().await;
    simulator.reset_stats();
    assert_eq!(poller.sweep_list().await.unwrap().sims_changed, 1);
    let refreshed = poller
        .refresh_due(i64::MAX, once_client::Priority::ChangedSims)
        .await
        .unwrap();
    assert_eq!(refreshed.sims_changed, 1);
    let calls = per_sim_calls(&simulator.stats());
    assert_eq!(
        calls,
        BTreeMap::from([(USAGE.to_owned(), 1), (DATA_QUOTA.to_owned(), 1)]),
        "usage and data quota only"
    );
    let changes = harness.events_after(head).await;
    assert_eq!(changes.get("UsageRecorded"), Some(&1), "{changes:?}");
    assert_eq!(due_parts(&pool, &iccid).await, 0, "nothing left due");
    harness.cleanup().await;
}

#[sqlx::test(migrator = "eventstore::MIGRATOR")]
async fn the_parts_due_survive_a_restart(pool: PgPool) {
    let (harness, connector) = Harness::polled(pool.clone(), 10, 0, &[]).await;
    let simulator = harness.simulator();
    let iccid = quiet_sim(&pool).await;
    simulator.add_usage(&iccid, Utc::now().date_naive(), 0, 2, 0);
    simulator.consume_quota_to(&iccid, once_simulator::QuotaKind::Sms, 100.0);
    // The sweep decides (SMS quota level moved: usage, SMS quota and the SMS list), then the
    // connector stops before the refresh.
    connector.poller.sweep_list().await.unwrap();
    drop(connector);
    let expected = Parts::USAGE | Parts::SMS_QUOTA | Parts::SMS;
    assert_eq!(due_parts(&pool, &iccid).await, expected.0);

    let restarted = harness.connector().await;
    simulator.reset_stats();
    let head = harness.head().await;
    let report = restarted
        .poller
        .refresh_due(i64::MAX, once_client::Priority::ChangedSims)
        .await
        .unwrap();
    assert_eq!(report.sims_changed, 1);
    let calls = per_sim_calls(&simulator.stats());
    assert_eq!(
        calls,
        BTreeMap::from([
            (USAGE.to_owned(), 1),
            ("GET /v1/sims/{iccid}/quota/sms".to_owned(), 1),
            ("GET /v1/sims/{iccid}/sms".to_owned(), 1),
        ])
    );
    assert_eq!(harness.events_after(head).await.get("UsageRecorded"), Some(&1));
    assert_eq!(due_parts(&pool, &iccid).await, 0);
    harness.cleanup().await;
}

#[sqlx::test(migrator = "eventstore::MIGRATOR")]
async fn the_daily_safety_net_refreshes_a_sim_whose_list_never_moved(pool: PgPool) {
    let (harness, connector) =
        Harness::polled(pool.clone(), 8, 0, &[("SYNC_DETAIL_INTERVAL_SECS", "3")]).await;
    let poller = &connector.poller;
    let simulator = harness.simulator();
    // Not due yet: the first refresh set the next one an interval away.
    simulator.reset_stats();
    assert_eq!(poller.refresh_round_robin(i64::MAX).await.unwrap().sims_seen, 0);
    // Past the due time the sweeps still see nothing moved and call nothing per SIM…
    tokio::time::sleep(Duration::from_millis(3200)).await;
    poller.poll_once().await.unwrap();
    assert_eq!(per_sim_calls(&simulator.stats()), BTreeMap::new());
    // …and once the full refresh is due, every SIM gets all its parts, once.
    let report = poller.refresh_round_robin(i64::MAX).await.unwrap();
    assert_eq!(report.sims_seen, 8);
    let calls = per_sim_calls(&simulator.stats());
    for route in [
        "GET /v1/sims/{iccid}/status",
        DATA_QUOTA,
        "GET /v1/sims/{iccid}/quota/sms",
        USAGE,
        "GET /v1/sims/{iccid}/sms",
    ] {
        assert_eq!(calls.get(route), Some(&8), "{route}: {calls:?}");
    }
    let next: Vec<chrono::DateTime<Utc>> = sqlx::query_scalar("SELECT full_due_at FROM sync_sims")
        .fetch_all(&pool)
        .await
        .unwrap();
    assert!(next.iter().all(|at| *at > Utc::now()), "{next:?}");
    assert_eq!(poller.refresh_round_robin(i64::MAX).await.unwrap().sims_seen, 0);
    harness.cleanup().await;
}

#[sqlx::test(migrator = "eventstore::MIGRATOR")]
async fn a_first_usage_only_sync_costs_one_call_per_sim_and_spreads_the_rest(pool: PgPool) {
    let harness = Harness::new(
        pool.clone(),
        40,
        0,
        &[("SYNC_FIRST_REFRESH", "usage"), ("SYNC_POLL_INTERVAL_SECS", "1")],
    )
    .await;
    let connector = harness.connector().await;
    let poller = &connector.poller;
    poller.sweep_list().await.unwrap();
    // The 40 SIMs never refreshed need 40 s at 1 call/s, longer than a usual sweep period
    // (7 pages at 25 % of 1 call/s: 28 s; the poll interval is 1 s): the list takes its
    // first-sync share, 2 %, one sweep per 350 s.
    let pause = |pages: u32| poller.pause_after_sweep(pages, Duration::ZERO, 1);
    assert_eq!(poller.last_seen().never_refreshed().await.unwrap(), 40);
    assert_eq!(pause(7).await, Duration::from_secs(350));
    // When they fit in a usual period (60 pages at 25 %: 240 s), the usual share: a few new
    // SIMs in a running fleet do not stretch its sweeps.
    assert_eq!(pause(60).await, Duration::from_secs(240));
    poller
        .refresh_due(i64::MAX, once_client::Priority::ChangedSims)
        .await
        .unwrap();
    assert_eq!(poller.last_seen().never_refreshed().await.unwrap(), 0);
    assert_eq!(pause(7).await, Duration::from_secs(28));
    let calls = per_sim_calls(&harness.simulator().stats());
    assert_eq!(calls, BTreeMap::from([(USAGE.to_owned(), 40)]));
    let (spread, complete): (i64, i64) = sqlx::query_as(
        "SELECT count(DISTINCT full_due_at), count(usage_as_of) FROM sync_sims \
         WHERE full_due_at > now() AND full_due_at < now() + interval '1 day'",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(complete, 40, "every SIM's usage is known");
    assert!(
        spread > 30,
        "the full refreshes are spread over the day: {spread}"
    );
    assert!(connector
        .poller
        .last_seen()
        .oldest_usage()
        .await
        .unwrap()
        .is_some());
    harness.cleanup().await;
}

/// Usage of a closed day from the streamer and from polling: the polled total is the
/// reference, the difference is recorded as `UsageReconciled`, and a streamed record arriving
/// afterwards does not push the day above the reference again.
#[sqlx::test(migrator = "eventstore::MIGRATOR")]
async fn streamed_and_polled_usage_of_a_closed_day_reconcile_to_the_polled_total(pool: PgPool) {
    let streamer = Streamer::start(pool.clone(), 1, true, &[("SYNC_DETAIL_INTERVAL_SECS", "1")]).await;
    let iccid = streamer.connector.poller.last_seen().all_iccids().await.unwrap()[0].clone();
    let yesterday = Utc::now().date_naive() - chrono::Duration::days(1);
    let period_start = yesterday.and_time(NaiveTime::MIN).and_utc();
    let record = |id: i64, bytes: u64| {
        let mut record = data_record(id, &iccid, bytes);
        record["start_timestamp"] = json!(format!("{yesterday}T21:00:00Z"));
        record["end_timestamp"] = json!(format!("{yesterday}T21:10:00Z"));
        record
    };
    let day_total = || async {
        streamer
            .sim(&iccid)
            .await
            .usage_for(period_start)
            .map_or(0, |p| p.data_bytes)
    };
    // The stream counted 1.5 MB for the day; the provider's final daily total is 1.2 MB.
    assert_eq!(
        streamer.post(&[record(1, 900_000), record(2, 600_000)]).await.0,
        200
    );
    streamer.drain().await;
    assert_eq!(day_total().await, 1_500_000);
    streamer
        .harness
        .simulator()
        .add_usage(&iccid, yesterday, 1_200_000, 0, 0);
    crate::common::poll_and_refresh_all(&streamer.connector.poller).await;
    assert_eq!(day_total().await, 1_200_000, "the polled total is the reference");
    let (payload,): (serde_json::Value,) =
        sqlx::query_as("SELECT payload FROM events WHERE event_type = 'UsageReconciled'")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(payload["recorded_data_bytes"], 1_500_000);
    assert_eq!(payload["data_bytes"], 1_200_000);
    assert_eq!(payload["difference_data_bytes"], -300_000);

    // A late streamed record of the reconciled day: stored and settled, the total unchanged.
    assert_eq!(streamer.post(&[record(3, 250_000)]).await.0, 200);
    streamer.drain().await;
    assert_eq!(day_total().await, 1_200_000);
    // The provider's total moving later moves the reference (and records it again).
    streamer
        .harness
        .simulator()
        .add_usage(&iccid, yesterday, 100_000, 0, 0);
    crate::common::poll_and_refresh_all(&streamer.connector.poller).await;
    assert_eq!(day_total().await, 1_300_000);
    assert_eq!(streamer.harness.count("UsageReconciled").await, 2);
    // Nothing new: nothing recorded.
    let head = streamer.harness.head().await;
    crate::common::poll_and_refresh_all(&streamer.connector.poller).await;
    streamer.harness.assert_nothing_after(head).await;
    streamer.harness.cleanup().await;
}

/// The same activity with the streamer off and on, on the same fleet: without the streamer
/// usage is polled by the usage round; with it, what is left per SIM and day is the list and
/// the safety net (whose usage call reconciles yesterday).
#[sqlx::test(migrator = "eventstore::MIGRATOR")]
async fn with_the_streamer_on_polled_calls_per_sim_and_day_drop(pool: PgPool) {
    const SIMS: usize = 10;
    // A "day" scaled down: the usage round every second stands for hourly, 8 rounds.
    const ROUNDS: usize = 8;
    let overrides = [
        ("SYNC_DETAIL_INTERVAL_SECS", "1"),
        ("SYNC_USAGE_INTERVAL_SECS", "1"),
    ];
    let (harness, polling) = Harness::polled(pool.clone(), SIMS, 0, &overrides).await;
    let streaming = {
        let mut env = harness.env.clone();
        env.insert("STREAMER_BASIC_AUTH".into(), "1nce:pw".into());
        // The streamer's default: no usage round.
        env.remove("SYNC_USAGE_INTERVAL_SECS");
        let config = sync_connector::Config::from_lookup(|key| env.get(key).cloned()).unwrap();
        sync_connector::Connector::new(config, pool.clone(), harness.nats.clone())
            .await
            .unwrap()
    };
    let simulator = harness.simulator();
    let iccids = simulator.iccids();
    let day = |connector: &sync_connector::Connector| {
        let poller = connector.poller.clone();
        let iccids = iccids.clone();
        async move {
            simulator.reset_stats();
            for _ in 0..ROUNDS {
                for iccid in &iccids {
                    simulator.add_usage(iccid, Utc::now().date_naive(), 10_000, 0, 0);
                }
                tokio::time::sleep(Duration::from_millis(1100)).await;
                poller.poll_once().await.unwrap();
                poller.refresh_usage_round(i64::MAX).await.unwrap();
            }
            poller.refresh_round_robin(i64::MAX).await.unwrap();
            let stats = simulator.stats();
            (stats.sims_calls as f64 / SIMS as f64, per_sim_calls(&stats))
        }
    };
    let (off, off_calls) = day(&polling).await;
    let (on, on_calls) = day(&streaming).await;
    eprintln!("calls per SIM and day: streamer off {off:.1}, on {on:.1}");
    // Off: 8 × (usage + the data quota it shows moved) + a 6-call safety net (with network
    // events) + the list ≈ 22.8.
    // On: the list + a 5-call safety net ≈ 5.8.
    assert!(off >= 12.0, "streamer off: {off} calls per SIM: {off_calls:?}");
    assert!(on <= 7.0, "streamer on: {on} calls per SIM: {on_calls:?}");
    assert!(
        on / off < 0.5,
        "with the streamer {on} against {off} calls per SIM and day"
    );
    assert_eq!(
        on_calls.get(USAGE),
        Some(&(SIMS as u64)),
        "one usage call per SIM and day"
    );
    harness.cleanup().await;
}

/// A disabled SIM carries no traffic: once a usage call made after the end of the day it was
/// first seen disabled has read that day, the usage round leaves it out (and its usage does
/// not count as old); enabled again, it is back in the round.
#[sqlx::test(migrator = "eventstore::MIGRATOR")]
async fn a_disabled_sim_leaves_the_usage_round_once_its_last_day_is_read(pool: PgPool) {
    let (harness, connector) =
        Harness::polled(pool.clone(), 6, 0, &[("SYNC_USAGE_INTERVAL_SECS", "1")]).await;
    let poller = &connector.poller;
    let simulator = harness.simulator();
    let iccids = poller.last_seen().all_iccids().await.unwrap();
    for iccid in &iccids {
        simulator.set_status(iccid, true);
    }
    let disabled = iccids[0].clone();
    simulator.set_status(&disabled, false);
    poller.poll_once().await.unwrap();
    let seen: Option<chrono::DateTime<Utc>> =
        sqlx::query_scalar("SELECT disabled_seen_at FROM sync_sims WHERE iccid = $1")
            .bind(&disabled)
            .fetch_one(&pool)
            .await
            .unwrap();
    assert!(
        seen.is_some(),
        "the sweep noted when the SIM was first seen disabled"
    );
    let round_calls = |expected: u64| async move {
        tokio::time::sleep(Duration::from_millis(1100)).await;
        simulator.reset_stats();
        let report = poller.refresh_usage_round(i64::MAX).await.unwrap();
        assert_eq!(report.sims_seen, expected);
        assert_eq!(per_sim_calls(&simulator.stats()).get(USAGE), Some(&expected));
    };
    // Seen disabled today: today's traffic may still come in, so it stays in the round.
    round_calls(6).await;
    // Seen disabled two days ago and read since: nothing can have changed.
    sqlx::query("UPDATE sync_sims SET disabled_seen_at = now() - interval '2 days' WHERE iccid = $1")
        .bind(&disabled)
        .execute(&pool)
        .await
        .unwrap();
    round_calls(5).await;
    // Its last usage call a day old: it does not make the fleet's usage look old.
    sqlx::query(
        "UPDATE sync_sims SET usage_as_of = date_trunc('day', now(), 'UTC') - interval '1 day' \
         + interval '1 minute' WHERE iccid = $1",
    )
    .bind(&disabled)
    .execute(&pool)
    .await
    .unwrap();
    let oldest = poller.last_seen().oldest_usage().await.unwrap().unwrap();
    assert!(
        Utc::now() - oldest < chrono::Duration::hours(1),
        "a settled SIM's usage is not old: {oldest}"
    );
    // A later sweep that still shows it disabled keeps the first time it was seen so.
    poller.poll_once().await.unwrap();
    round_calls(5).await;
    // Enabled again: back in the round.
    simulator.set_status(&disabled, true);
    poller.poll_once().await.unwrap();
    round_calls(6).await;
    harness.cleanup().await;
}

/// The usage round takes data a SIM used since its last usage call off its data quota without
/// a quota call (one call per SIM, however active the fleet), once even if the refresh runs
/// again; an estimate that crosses a level (80 % used) asks the provider for the quota instead.
#[sqlx::test(migrator = "eventstore::MIGRATOR")]
async fn the_usage_round_takes_used_data_off_the_quota_without_a_quota_call(pool: PgPool) {
    let (harness, connector) =
        Harness::polled(pool.clone(), 4, 0, &[("SYNC_USAGE_INTERVAL_SECS", "1")]).await;
    let poller = &connector.poller;
    let simulator = harness.simulator();
    // A SIM with more than half of its 500 MB left.
    let (iccid, remaining): (String, i64) = sqlx::query_as(
        "SELECT iccid, (data_quota->>'remaining')::bigint FROM sync_sims \
         WHERE (data_quota->>'remaining')::bigint > 260000000 ORDER BY iccid LIMIT 1",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    let round = || async {
        tokio::time::sleep(Duration::from_millis(1100)).await;
        simulator.reset_stats();
        let head = harness.head().await;
        poller.refresh_usage_round(i64::MAX).await.unwrap();
        (per_sim_calls(&simulator.stats()), head)
    };
    // Nothing used: one usage call per SIM, nothing recorded.
    let (calls, head) = round().await;
    assert_eq!(calls, BTreeMap::from([(USAGE.to_owned(), 4)]));
    assert_eq!(harness.events_after(head).await, BTreeMap::new());

    simulator.add_usage(&iccid, Utc::now().date_naive(), 3_000_000, 0, 0);
    let (calls, head) = round().await;
    assert_eq!(calls, BTreeMap::from([(USAGE.to_owned(), 4)]), "no quota call");
    let consumed: Vec<i64> = sqlx::query_scalar(
        "SELECT (payload->>'remaining')::bigint FROM events \
         WHERE position > $1 AND event_type = 'QuotaConsumptionRecorded' AND iccid = $2",
    )
    .bind(head)
    .bind(&iccid)
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(consumed, vec![remaining - 3_000_000]);
    // The same growth seen again (a refresh retried after a crash before it saved what it saw:
    // here the saved days are wiped) takes nothing off twice.
    sqlx::query("UPDATE sync_sims SET usage_days = '{}'::jsonb WHERE iccid = $1")
        .bind(&iccid)
        .execute(&pool)
        .await
        .unwrap();
    let head = harness.head().await;
    let before: serde_json::Value = sqlx::query_scalar("SELECT usage_days FROM sync_sims WHERE iccid = $1")
        .bind(&iccid)
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(before, json!({}));
    let (_, _) = round().await;
    assert_eq!(
        harness.events_after(head).await.get("QuotaConsumptionRecorded"),
        None,
        "the same growth of the same day (0 → 3 MB) is taken off once"
    );

    // Enough used that the estimate would cross 80 %: the provider's figure is read instead.
    simulator.add_usage(&iccid, Utc::now().date_naive(), 300_000_000, 0, 0);
    simulator.consume_quota_to(&iccid, once_simulator::QuotaKind::Data, 85.0);
    let (calls, head) = round().await;
    assert_eq!(
        calls,
        BTreeMap::from([(USAGE.to_owned(), 4), (DATA_QUOTA.to_owned(), 1)])
    );
    let changes = harness.events_after(head).await;
    assert_eq!(changes.get("QuotaThresholdCrossed"), Some(&1), "{changes:?}");
    harness.cleanup().await;
}

/// After a usage-only first sync the platform knows no quota yet: data used then costs no
/// quota call and records nothing on the quota; the SIM's first full refresh brings the
/// provider's figure, that use included.
#[sqlx::test(migrator = "eventstore::MIGRATOR")]
async fn used_data_of_a_sim_whose_quota_is_not_known_yet_costs_no_quota_call(pool: PgPool) {
    let harness = Harness::new(
        pool.clone(),
        3,
        0,
        &[("SYNC_FIRST_REFRESH", "usage"), ("SYNC_USAGE_INTERVAL_SECS", "1")],
    )
    .await;
    let connector = harness.connector().await;
    let poller = &connector.poller;
    let simulator = harness.simulator();
    poller.poll_once().await.unwrap();
    let iccid = poller.last_seen().all_iccids().await.unwrap()[0].clone();
    simulator.add_usage(&iccid, Utc::now().date_naive(), 3_000_000, 0, 0);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    simulator.reset_stats();
    let head = harness.head().await;
    poller.refresh_usage_round(i64::MAX).await.unwrap();
    assert_eq!(
        per_sim_calls(&simulator.stats()),
        BTreeMap::from([(USAGE.to_owned(), 3)])
    );
    let changes = harness.events_after(head).await;
    assert_eq!(changes.get("UsageRecorded"), Some(&1), "{changes:?}");
    assert_eq!(changes.get("QuotaConsumptionRecorded"), None, "{changes:?}");
    harness.cleanup().await;
}
