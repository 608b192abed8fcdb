//! The live projector against real Postgres, NATS JetStream and Redis.

use std::collections::{BTreeMap, HashSet};

use crate::common::*;
use chrono::{DateTime, Utc};
use readmodel::{load_sim, sim_view_as_of, Cache, CacheConfig, FleetSummary};
use sqlx::PgPool;

/// The [`projected_scenario`]'s read models (without the stream sequence: the reference a
/// second run must reach), then [`Env::start_over`].
async fn reference_then_start_over(
    pool: &PgPool,
) -> (Env, Vec<eventstore::StoredEvent>, BTreeMap<String, Vec<String>>) {
    let (env, events, _) = projected_scenario(pool).await;
    let reference = snapshot(pool, false).await;
    env.start_over().await;
    (env, events, reference)
}

/// Usage summed over the raw rows and over the daily rollup.
async fn usage_totals(pool: &PgPool) -> (i64, i64) {
    sqlx::query_as("SELECT sum(data_bytes)::bigint, (SELECT sum(data_bytes)::bigint FROM sim_usage_daily) FROM sim_usage")
        .fetch_one(pool)
        .await
        .unwrap()
}

fn events_of_sim(events: &[eventstore::StoredEvent], iccid: &str) -> Vec<eventstore::StoredEvent> {
    events.iter().filter(|e| e.iccid == iccid).cloned().collect()
}

#[sqlx::test(migrator = "eventstore::MIGRATOR")]
async fn every_event_type_lands_in_its_rows(pool: PgPool) {
    let (env, events, _) = projected_scenario(&pool).await;

    // The SIM rows equal the auditors' replay of the log (GET /sims/{iccid}/state?as_of=now).
    for iccid in [SIM_A, SIM_B] {
        let row = load_sim(&pool, iccid).await.unwrap().expect("row");
        let replayed = sim_view_as_of(&events_of_sim(&events, iccid)).unwrap();
        assert_eq!(row, replayed, "{iccid}");
    }

    let a = load_sim(&pool, SIM_A).await.unwrap().unwrap();
    assert_eq!(a.label.as_deref(), Some("pump A1"));
    assert_eq!(a.tags, vec!["north".to_owned(), "pump".to_owned()]);
    assert!(a.imei_lock);
    assert_eq!(a.imei.as_deref(), Some("490154203237518"));
    assert_eq!(a.status, domain::SimStatus::Active);
    assert_eq!(a.pending_change, None);
    assert_eq!(a.provider_status.as_deref(), Some("Enabled"));
    assert_eq!(a.network.as_deref(), Some("Telekom"));
    assert_eq!(a.country.as_deref(), Some("DE"));
    assert_eq!(a.rat.as_deref(), Some("LTE-M"));
    assert_eq!(a.ip_address.as_deref(), Some("10.0.0.7"));
    assert_eq!(a.last_seen_at, Some(at(1, 9, 30)));
    assert_eq!(
        (a.data_total, a.data_remaining, a.data_expiry),
        (Some(1500), Some(650), Some(at(31, 0, 0)))
    );
    assert_eq!((a.sms_total, a.sms_remaining), (None, None));
    let sim_a_events: Vec<_> = events
        .iter()
        .filter(|e| e.aggregate_type == "sim" && e.aggregate_id == SIM_A)
        .collect();
    assert_eq!(a.version, sim_a_events.last().unwrap().sequence);
    // The last SIM or quota event (SMS events do not touch the row), with its recorded_at.
    let last_row_event = events
        .iter()
        .rfind(|e| e.iccid == SIM_A && e.aggregate_type != "sms")
        .unwrap();
    assert_eq!(a.last_position, last_row_event.position);
    assert_eq!(a.updated_at, last_row_event.recorded_at);

    let b = load_sim(&pool, SIM_B).await.unwrap().unwrap();
    assert_eq!(b.status, domain::SimStatus::Terminated);
    assert_eq!(b.terminated_at, Some(at(1, 17, 0)));
    assert_eq!((b.data_total, b.data_remaining), (Some(1000), Some(0)));
    assert_eq!(
        (b.sms_total, b.sms_remaining, b.sms_expiry),
        (Some(0), Some(0), None)
    );

    // Quotas.
    type QuotaRow = (
        String,
        String,
        i64,
        i64,
        i32,
        Vec<i32>,
        bool,
        bool,
        Option<uuid::Uuid>,
        Option<i64>,
        Option<String>,
        Option<DateTime<Utc>>,
    );
    let quotas: Vec<QuotaRow> = sqlx::query_as(
        "SELECT iccid, kind, total, remaining, period, thresholds_crossed, exhausted, expired, pending_topup_id, \
         pending_topup_volume, last_topup_status, last_topup_at FROM sim_quotas ORDER BY iccid, kind",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(quotas.len(), 3);
    // A: 80 % crossed in period 1, then the completed top-up started period 2 (alerts re-armed).
    let qa = &quotas[0];
    assert_eq!((qa.0.as_str(), qa.1.as_str()), (SIM_A, "data"));
    assert_eq!((qa.2, qa.3, qa.4), (1500, 650, 2));
    assert!(qa.5.is_empty());
    assert!(!qa.6);
    assert_eq!((qa.8, qa.9), (None, None));
    assert_eq!(qa.10.as_deref(), Some("completed"));
    // B: used up.
    let qb = &quotas[1];
    assert_eq!((qb.1.as_str(), qb.2, qb.3, qb.4), ("data", 1000, 0, 1));
    assert_eq!(qb.5, vec![80, 100]);
    assert!(qb.6, "exhausted");
    let qs = &quotas[2];
    assert_eq!(qs.1, "sms");
    assert_eq!((qs.8, qs.9), (Some(TOPUP_B_ID), Some(50)));
    assert_eq!(qs.10.as_deref(), Some("requested"));
    assert_eq!(qs.11, Some(at(1, 16, 0)));
    // The threshold events were projected in period 1 (SIM A's 80 % alert is in the log).
    assert!(events
        .iter()
        .any(|e| e.event_type == "QuotaThresholdCrossed" && e.iccid == SIM_A));

    // SMS.
    type SmsRow = (
        uuid::Uuid,
        String,
        String,
        String,
        Option<String>,
        Option<i32>,
        Option<String>,
        Option<DateTime<Utc>>,
        Option<DateTime<Utc>>,
        i64,
    );
    let sms: Vec<SmsRow> = sqlx::query_as(
        "SELECT message_id, direction, status, payload, encoding, parts, provider_message_id, delivered_at, \
         received_at, version FROM sms_messages ORDER BY message_id",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(sms.len(), 2);
    let mt = &sms[0];
    assert_eq!(
        (mt.0, mt.1.as_str(), mt.2.as_str(), mt.3.as_str()),
        (MT_ID, "MT", "delivered", "reboot")
    );
    assert_eq!(
        (mt.4.as_deref(), mt.5, mt.6.as_deref()),
        (Some("gsm7"), Some(1), Some("p-1"))
    );
    assert_eq!((mt.7, mt.9), (Some(at(1, 15, 2)), 3));
    let mo = &sms[1];
    assert_eq!(
        (mo.0, mo.1.as_str(), mo.2.as_str(), mo.8),
        (MO_ID, "MO", "received", Some(at(1, 15, 3)))
    );

    // Status history: every change of `sims.status`, with its actor and recorded time.
    type HistoryRow = (String, Option<String>, String, String, Option<String>);
    let history: Vec<HistoryRow> = sqlx::query_as(
        "SELECT iccid, from_status, to_status, event_type, actor FROM sim_status_history ORDER BY iccid, position",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    let expected = [
        (SIM_A, None, "inactive", "SimRegistered", "user:alice"),
        (
            SIM_A,
            Some("inactive"),
            "active",
            "ActivationCompleted",
            "user:alice",
        ),
        (
            SIM_A,
            Some("active"),
            "suspended",
            "SuspensionCompleted",
            "user:alice",
        ),
        (
            SIM_A,
            Some("suspended"),
            "active",
            "ProviderStatusChanged",
            "user:alice",
        ),
        (SIM_B, None, "inactive", "SimRegistered", "user:alice"),
        (
            SIM_B,
            Some("inactive"),
            "terminated",
            "SimTerminated",
            "user:alice",
        ),
    ];
    let got: Vec<_> = history
        .iter()
        .map(|h| {
            (
                h.0.as_str(),
                h.1.as_deref(),
                h.2.as_str(),
                h.3.as_str(),
                h.4.as_deref().unwrap_or(""),
            )
        })
        .collect();
    assert_eq!(got, expected);
    let changed_at: Vec<(i64, DateTime<Utc>)> =
        sqlx::query_as("SELECT position, changed_at FROM sim_status_history")
            .fetch_all(&pool)
            .await
            .unwrap();
    for (position, changed) in changed_at {
        let event = events.iter().find(|e| e.position == position).unwrap();
        assert_eq!(changed, event.recorded_at);
    }

    // Connectivity history: one row per ConnectivityChanged event, at its position.
    type ConnectivityRow = (
        String,
        i64,
        DateTime<Utc>,
        Option<String>,
        Option<String>,
        Option<String>,
    );
    let connectivity: Vec<ConnectivityRow> = sqlx::query_as(
        "SELECT iccid, position, observed_at, network, rat, ip_address FROM sim_connectivity_history \
         ORDER BY position",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    let changed: Vec<i64> = events
        .iter()
        .filter(|e| e.event_type == "ConnectivityChanged")
        .map(|e| e.position)
        .collect();
    assert!(!changed.is_empty());
    assert_eq!(connectivity.iter().map(|c| c.1).collect::<Vec<_>>(), changed);
    assert_eq!(
        (
            connectivity[0].0.as_str(),
            connectivity[0].2,
            connectivity[0].3.as_deref(),
            connectivity[0].4.as_deref(),
            connectivity[0].5.as_deref()
        ),
        (
            SIM_A,
            at(1, 9, 30),
            Some("Telekom"),
            Some("LTE-M"),
            Some("10.0.0.7")
        )
    );

    // Usage: the deltas at the metadata time, clamped into the period; rollups in UTC buckets.
    for (query, expected) in [
        (
            "SELECT observed_at, data_bytes, sms_mo, sms_mt FROM sim_usage ORDER BY position",
            [(at(1, 10, 15), 1000, 1, 1), (at(2, 0, 0), 2500, 1, 0)],
        ),
        (
            "SELECT bucket, data_bytes, sms_mo, sms_mt FROM sim_usage_hourly ORDER BY bucket",
            [(at(1, 10, 0), 1000, 1, 1), (at(2, 0, 0), 2500, 1, 0)],
        ),
        (
            "SELECT bucket, data_bytes, sms_mo, sms_mt FROM sim_usage_daily ORDER BY bucket",
            [(at(1, 0, 0), 1000, 1, 1), (at(2, 0, 0), 2500, 1, 0)],
        ),
    ] {
        let rows: Vec<(DateTime<Utc>, i64, i64, i64)> = sqlx::query_as(query).fetch_all(&pool).await.unwrap();
        assert_eq!(rows, expected, "{query}");
    }

    // Sync freshness: each SIM's newest usage report (B reported none).
    let reported: Vec<(String, Option<DateTime<Utc>>)> =
        sqlx::query_as("SELECT iccid, usage_reported_at FROM sims ORDER BY iccid")
            .fetch_all(&pool)
            .await
            .unwrap();
    assert_eq!(
        reported,
        [(SIM_A.to_owned(), Some(at(2, 0, 0))), (SIM_B.to_owned(), None)]
    );

    // Bookkeeping: every aggregate at its last sequence; the checkpoint at the last event.
    let versions: Vec<(String, String, i64)> = sqlx::query_as(
        "SELECT aggregate_type, aggregate_id, version FROM projection_versions WHERE projector = $1",
    )
    .bind(PROJECTOR)
    .fetch_all(&pool)
    .await
    .unwrap();
    let aggregates: HashSet<(String, String)> = events
        .iter()
        .map(|e| (e.aggregate_type.clone(), e.aggregate_id.clone()))
        .collect();
    assert_eq!(versions.len(), aggregates.len());
    for (aggregate_type, aggregate_id, version) in versions {
        let last = events
            .iter()
            .filter(|e| e.aggregate_type == aggregate_type && e.aggregate_id == aggregate_id)
            .map(|e| e.sequence)
            .max()
            .unwrap();
        assert_eq!(version, last, "{aggregate_type}/{aggregate_id}");
    }
    let last = events.last().unwrap();
    let (txid, position, stream_sequence): (String, i64, i64) = sqlx::query_as(
        "SELECT transaction_id::text, position, stream_sequence FROM projection_checkpoints WHERE projector = $1",
    )
    .bind(PROJECTOR)
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(
        (txid, position),
        (last.transaction_id.unwrap().to_string(), last.position)
    );
    // The first message woke the projector, which applied the whole log from Postgres; the
    // messages behind it found their events applied already.
    assert!(
        (1..=events.len() as i64).contains(&stream_sequence),
        "{stream_sequence}"
    );
    assert_eq!(env.counter("projector_events_applied_total"), events.len() as u64);
    // Messages handled in the batch that applied their events are not duplicates; those that
    // came after found their events applied. Which is which depends on how the consumer
    // batched them; that no event was applied twice does not.
    let duplicates = env.counter("projector_duplicates_total");
    assert!(duplicates < events.len() as u64, "{duplicates}");
    let rendered = env.metrics.render();
    assert!(
        rendered.contains("projection_lag_events{projector=\"read-models\"} 0"),
        "{rendered}"
    );
    assert!(
        rendered.contains("projection_lag_seconds{projector=\"read-models\"} 0"),
        "{rendered}"
    );
    env.cleanup().await;
}

#[sqlx::test(migrator = "eventstore::MIGRATOR")]
async fn a_message_delivered_twice_changes_nothing_twice(pool: PgPool) {
    let (env, events, projector) = projected_scenario(&pool).await;
    let before = snapshot(&pool, false).await;
    let usage_before = usage_totals(&pool).await;

    // Redeliveries: a usage report, a label change, a quota consumption and an SMS event again.
    let again: Vec<_> = events
        .iter()
        .filter(|e| {
            matches!(
                e.event_type.as_str(),
                "UsageRecorded" | "SimLabelChanged" | "QuotaConsumptionRecorded" | "SmsDelivered"
            )
        })
        .cloned()
        .collect();
    assert!(again.len() >= 5);
    let duplicates_before = env.counter("projector_duplicates_total");
    let applied_before = env.counter("projector_events_applied_total");
    for event in &again {
        env.publish_again(event).await;
    }
    env.run_to_end(&projector, &events).await;
    env.run_until_counted(
        &projector,
        &events,
        "projector_duplicates_total",
        duplicates_before + again.len() as u64,
        "redeliveries not handled",
    )
    .await;
    assert_eq!(
        env.counter("projector_duplicates_total") - duplicates_before,
        again.len() as u64
    );
    assert_eq!(env.counter("projector_events_applied_total"), applied_before);
    assert_eq!(snapshot(&pool, false).await, before);
    let usage_after = usage_totals(&pool).await;
    assert_eq!(usage_after, usage_before);
    assert_eq!(usage_after, (3500, 3500));
    env.cleanup().await;
}

#[sqlx::test(migrator = "eventstore::MIGRATOR")]
async fn messages_missing_from_the_stream_are_applied_from_the_log(pool: PgPool) {
    // The reference: the full history.
    let (env, events, full) = reference_then_start_over(&pool).await;

    // Now only some messages: of each aggregate, every second event is missing, but never its
    // last. The message is only a wake-up: the projector reads the log itself.
    let mut published = Vec::new();
    let mut skipped = 0;
    for (i, event) in events.iter().enumerate() {
        let has_later = events[i + 1..]
            .iter()
            .any(|e| e.aggregate_type == event.aggregate_type && e.aggregate_id == event.aggregate_id);
        if has_later && event.sequence % 2 == 0 {
            skipped += 1;
            continue;
        }
        published.push(event.clone());
    }
    assert!(skipped >= 8, "{skipped}");
    env.publish_all(&published).await;
    env.run_to_end(&env.projector().await, &events).await;
    assert_eq!(snapshot(&pool, false).await, full);

    // "Seq 1 and 3 only" in its plainest form: the label change (seq 2) of a new SIM is missing.
    let w = Writer::new(&pool);
    let c = "8988303000000000027";
    w.sim(c, register(c, "901405100000003", "first")).await;
    w.sim(
        c,
        domain::SimCommand::UpdateDetails {
            label: Some(Some("second".into())),
            tags: None,
        },
    )
    .await;
    w.sim(c, domain::SimCommand::SetImeiLock { enabled: true }).await;
    let log = global_log(&pool).await;
    let of_c: Vec<_> = log.iter().filter(|e| e.iccid == c).cloned().collect();
    assert_eq!(of_c.iter().map(|e| e.sequence).collect::<Vec<_>>(), vec![1, 2, 3]);
    env.publish(&of_c[0]).await;
    env.publish(&of_c[2]).await;
    env.run_until(&env.projector().await, of_c[2].position).await;
    let row = load_sim(&pool, c).await.unwrap().unwrap();
    assert_eq!(row.label.as_deref(), Some("second"));
    assert!(row.imei_lock);
    assert_eq!(row.version, 3);
    assert_eq!(row, sim_view_as_of(&of_c).unwrap());
    env.cleanup().await;
}

#[sqlx::test(migrator = "eventstore::MIGRATOR")]
async fn a_projector_stopped_mid_stream_finishes_like_one_that_ran_through(pool: PgPool) {
    let (env, events, through) = reference_then_start_over(&pool).await;

    // Stopped after 7 messages (others were pulled but never acknowledged), then dropped.
    env.publish_all(&events).await;
    {
        let first = env.projector_with(env.cache().await, Some(7)).await;
        let (_stop, shutdown) = tokio::sync::watch::channel(false);
        first.run(shutdown).await.unwrap();
    }
    let applied: i64 =
        sqlx::query_scalar("SELECT coalesce(sum(version), 0)::bigint FROM projection_versions")
            .fetch_one(&pool)
            .await
            .unwrap();
    // The first message alone may have applied the whole log (it catches up from Postgres).
    assert!(applied >= 7, "stopped after 7 messages, {applied} applied");
    // And one killed in the middle of whatever it was doing.
    {
        let second = env.projector().await;
        let (_stop, shutdown) = tokio::sync::watch::channel(false);
        let running = tokio::spawn(async move { second.run(shutdown).await });
        tokio::time::sleep(std::time::Duration::from_millis(30)).await;
        running.abort();
        let _ = running.await;
    }
    env.run_to_end(&env.projector().await, &events).await;
    // The checkpoint's stream sequence (informational: the furthest message a batch was
    // woken by) depends on how the messages were batched; every row else must be the same.
    assert_eq!(snapshot(&pool, false).await, through);
    env.cleanup().await;
}

#[sqlx::test(migrator = "eventstore::MIGRATOR")]
async fn redis_holds_the_sim_after_the_commit(pool: PgPool) {
    let events = scenario(&pool).await;
    let env = Env::new(pool.clone()).await;
    let cache = env.cache().await;
    cache.put_fleet_summary(&FleetSummary::default()).await;
    assert!(cache.get_fleet_summary().await.is_some(), "Redis at {REDIS_URL}");
    assert!(cache.get_sim(SIM_A).await.is_none());

    env.publish_all(&events).await;
    env.run_to_end(&env.projector_with(cache.clone(), None).await, &events)
        .await;
    for iccid in [SIM_A, SIM_B] {
        let cached = cache.get_sim(iccid).await.expect("cached after the commit");
        assert_eq!(Some(cached), load_sim(&pool, iccid).await.unwrap());
    }
    // Events do not invalidate the fleet summary: the query API recomputes it at most once a
    // second instead of after every event.
    assert!(
        cache.get_fleet_summary().await.is_some(),
        "fleet summary left alone"
    );
    cache
        .invalidate(&[cache.sim_key(SIM_A), cache.sim_key(SIM_B)])
        .await;
    env.cleanup().await;
}

#[sqlx::test(migrator = "eventstore::MIGRATOR")]
async fn without_redis_everything_is_still_applied(pool: PgPool) {
    let events = scenario(&pool).await;
    let env = Env::new(pool.clone()).await;
    let dead = Cache::connect(CacheConfig::new("redis://127.0.0.1:1", &env.redis_prefix)).await;
    env.publish_all(&events).await;
    env.run_to_end(&env.projector_with(dead, None).await, &events)
        .await;
    assert_eq!(env.counter("projector_events_applied_total"), events.len() as u64);
    for iccid in [SIM_A, SIM_B] {
        let row = load_sim(&pool, iccid).await.unwrap().unwrap();
        assert_eq!(row, sim_view_as_of(&events_of_sim(&events, iccid)).unwrap());
    }
    env.cleanup().await;
}

#[sqlx::test(migrator = "eventstore::MIGRATOR")]
async fn a_message_that_is_no_event_is_acknowledged_without_effect(pool: PgPool) {
    let events = scenario(&pool).await;
    let env = Env::new(pool.clone()).await;
    env.js
        .publish(format!("{}.v1.{SIM_A}.Nonsense", env.prefix), "not json".into())
        .await
        .unwrap()
        .await
        .unwrap();
    env.project(&events).await;
    assert_eq!(env.counter("pipeline_forged_messages_total"), 1);
    assert_eq!(env.counter("projector_events_applied_total"), events.len() as u64);
    env.cleanup().await;
}

/// Messages that are not what the store holds change nothing: a body edited in flight, a
/// position the store does not have, a transaction id past every real one. Each is counted
/// and acknowledged; the read models stay as the log says.
#[sqlx::test(migrator = "eventstore::MIGRATOR")]
async fn a_forged_event_body_changes_no_read_model(pool: PgPool) {
    let (env, events, projector) = projected_scenario(&pool).await;
    let before = snapshot(&pool, true).await;

    let label = events
        .iter()
        .find(|e| e.event_type == "SimLabelChanged")
        .expect("a label change")
        .clone();
    let mut edited = label.clone();
    edited.payload = serde_json::json!({ "label": "hacked" });
    env.publish_again(&edited).await;
    let mut unknown = label.clone();
    unknown.position = 1_000_000;
    env.publish_again(&unknown).await;
    let mut far = label.clone();
    far.transaction_id = Some(u64::MAX - 1);
    env.publish_again(&far).await;

    env.run_until_counted(
        &projector,
        &events,
        "pipeline_forged_messages_total",
        3,
        "forged messages not handled",
    )
    .await;
    assert_eq!(env.counter("pipeline_forged_messages_total"), 3);
    assert_eq!(snapshot(&pool, true).await, before);
    let row = load_sim(&pool, &label.iccid).await.unwrap().unwrap();
    assert_ne!(row.label.as_deref(), Some("hacked"));
    env.cleanup().await;
}

/// An event this code cannot decode (a type from a newer version) and one Postgres refuses
/// (here: a constraint the test adds) are parked; later events of their aggregates wait behind
/// them; everything else projects; the SIM rows say `projection: parked`. `replay-parked`
/// applies what the code (and schema) now accept and keeps the rest parked.
#[sqlx::test(migrator = "eventstore::MIGRATOR")]
async fn poison_events_are_parked_and_replayed_once_they_apply(pool: PgPool) {
    let events = scenario(&pool).await;
    let w = Writer::new(&pool);
    // SIM_A gets an event of a type no code knows, then a label change behind it.
    let future = r#"{"actor": "user:future"}"#;
    append_raw_sim_event(&pool, SIM_A, "SimTeleported", "9", r#"{"to": "mars"}"#, future).await;
    // (Written by the newer code too: this code cannot load SIM_A any more.)
    append_raw_sim_event(
        &pool,
        SIM_A,
        "SimLabelChanged",
        "1",
        r#"{"label": "behind"}"#,
        future,
    )
    .await;
    // SIM D's label breaks a rule of the schema (for now).
    let d = SIM_EVIL;
    write_a_label_the_schema_refuses(&pool).await;
    // A third SIM registered afterwards projects as usual.
    let c = "8988303000000000035";
    w.sim(c, register(c, "901405100000009", "fine")).await;
    let log = global_log(&pool).await;
    assert!(log.len() > events.len());

    let env = Env::new(pool.clone()).await;
    let projector = env.project(&log).await;

    let parked: Vec<(String, String, i64, String)> = sqlx::query_as(
        "SELECT aggregate_id, event_type, sequence, error FROM parked_events WHERE projector = $1 ORDER BY position",
    )
    .bind(PROJECTOR)
    .fetch_all(&pool)
    .await
    .unwrap();
    let summary: Vec<(&str, &str)> = parked
        .iter()
        .map(|(a, t, _, _)| (a.as_str(), t.as_str()))
        .collect();
    assert_eq!(
        summary,
        vec![
            (SIM_A, "SimTeleported"),
            (SIM_A, "SimLabelChanged"),
            (d, "SimLabelChanged")
        ]
    );
    assert!(parked[0].3.contains("cannot be decoded"), "{}", parked[0].3);
    assert!(parked[1].3.contains("earlier event"), "{}", parked[1].3);
    assert!(parked[2].3.contains("test_no_evil"), "{}", parked[2].3);
    for iccid in [SIM_A, d] {
        assert_eq!(
            load_sim(&pool, iccid).await.unwrap().unwrap().projection,
            "parked"
        );
    }
    let b = load_sim(&pool, SIM_B).await.unwrap().unwrap();
    assert_eq!(b, sim_view_as_of(&events_of_sim(&log, SIM_B)).unwrap());
    let fine = load_sim(&pool, c)
        .await
        .unwrap()
        .expect("the third SIM projected");
    assert_eq!(fine.projection, "complete");
    assert_eq!(fine, sim_view_as_of(&events_of_sim(&log, c)).unwrap());
    env.run_to_end(&projector, &log).await;
    let rendered = env.metrics.render();
    assert!(
        rendered.contains("projector_parked_events{projector=\"read-models\"} 3"),
        "{rendered}"
    );
    assert_eq!(env.counter("projector_parked_total"), 3);

    // The schema accepts the label now; the unknown type is still unknown.
    sqlx::query("ALTER TABLE sims DROP CONSTRAINT test_no_evil")
        .execute(&pool)
        .await
        .unwrap();
    let report = projectors::replay_parked(&pool, PROJECTOR).await.unwrap();
    assert_eq!(
        (report.replayed, report.aggregates_cleared, report.still_parked),
        (1, 1, 2)
    );
    assert_eq!(report.errors.len(), 1);
    let replayed = load_sim(&pool, d).await.unwrap().unwrap();
    assert_eq!(replayed.projection, "complete");
    assert_eq!(replayed.label.as_deref(), Some("evil"));
    assert_eq!(replayed, sim_view_as_of(&events_of_sim(&log, d)).unwrap());
    assert_eq!(
        load_sim(&pool, SIM_A).await.unwrap().unwrap().projection,
        "parked"
    );
    let still: i64 = sqlx::query_scalar("SELECT count(*) FROM parked_events")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(still, 2);
    env.cleanup().await;
}

/// Log order is transaction order, not sequence order: an older transaction can write an
/// aggregate's second event after a younger one wrote its first and committed. The projector
/// meets the second first, fills the first in from the events table, and skips it later.
#[sqlx::test(migrator = "eventstore::MIGRATOR")]
async fn a_gap_in_log_order_is_filled_from_postgres_never_applied_out_of_order(pool: PgPool) {
    let events = scenario(&pool).await;
    let registered = events
        .iter()
        .find(|e| e.iccid == SIM_A && e.event_type == "SimRegistered")
        .unwrap()
        .clone();
    let c = "8988303000000000043";
    let mut older = pool.begin().await.unwrap();
    // Takes its transaction id now, before the younger one below (marked as an event writer
    // first: an id taken unmarked would not hold the log's horizon).
    sqlx::query("SELECT mark_event_writer(), pg_current_xact_id()")
        .execute(&mut *older)
        .await
        .unwrap();
    insert_registration_copy(&pool, &registered, c).await;
    sqlx::query(
        "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata, iccid) \
         VALUES ('sim', $1, 2, 'SimLabelChanged', '1', '{\"label\": \"second\"}', $2, $1)",
    )
    .bind(c)
    .bind(&registered.metadata)
    .execute(&mut *older)
    .await
    .unwrap();
    older.commit().await.unwrap();
    let log = global_log(&pool).await;
    let of_c: Vec<_> = log.iter().filter(|e| e.iccid == c).cloned().collect();
    assert_eq!(
        of_c.iter().map(|e| e.sequence).collect::<Vec<_>>(),
        vec![2, 1],
        "log order"
    );

    let env = Env::new(pool.clone()).await;
    env.project(&log).await;
    assert_eq!(env.counter("projector_gaps_filled_total"), 1);
    let row = load_sim(&pool, c).await.unwrap().unwrap();
    assert_eq!(row.label.as_deref(), Some("second"));
    assert_eq!(row.version, 2);
    let mut in_order = of_c.clone();
    in_order.sort_by_key(|e| e.sequence);
    assert_eq!(row, sim_view_as_of(&in_order).unwrap());
    env.cleanup().await;
}

/// Three partitions, run side by side, each apply only their SIMs' events, move over the
/// others', and together leave every read model as one unpartitioned projector does; a
/// change of layout (1 → 3) starts every partition at the least checkpoint; a partition that
/// finds another layout recorded stops.
#[sqlx::test(migrator = "eventstore::MIGRATOR")]
async fn partitions_together_equal_one_projector(pool: PgPool) {
    use eventstore::{partition_of, Share};
    use projectors::checkpoint;
    let (env, events, _) = projected_scenario(&pool).await;
    let mut whole = snapshot(&pool, false).await;
    whole.remove("projection_checkpoints");

    // 1 → 3: the unpartitioned checkpoint becomes three, at its cursor.
    assert!(checkpoint::set_layout(&pool, PROJECTOR, 3).await.unwrap());
    assert!(
        !checkpoint::set_layout(&pool, PROJECTOR, 3).await.unwrap(),
        "unchanged"
    );
    let names = checkpoint::partition_names(&mut pool.acquire().await.unwrap(), PROJECTOR)
        .await
        .unwrap();
    assert_eq!(names, ["p0", "p1", "p2"].map(|p| format!("{PROJECTOR}-{p}")));
    let rows: Vec<(String, i64)> =
        sqlx::query_as("SELECT projector, position FROM projection_checkpoints ORDER BY projector")
            .fetch_all(&pool)
            .await
            .unwrap();
    let last = events.last().unwrap().position;
    assert_eq!(rows, names.iter().map(|n| (n.clone(), last)).collect::<Vec<_>>());

    // From scratch, in three partitions.
    reset_read_models(&pool).await;
    checkpoint::set_layout(&pool, PROJECTOR, 1).await.unwrap();
    checkpoint::set_layout(&pool, PROJECTOR, 3).await.unwrap();
    let mut running = Vec::new();
    let (stop, shutdown) = tokio::sync::watch::channel(false);
    for index in 0..3 {
        let settings = env.settings(None).for_share(Share { index, of: 3 });
        let projector = env.projector_for(env.cache().await, settings).await;
        let shutdown = shutdown.clone();
        running.push(tokio::spawn(async move { projector.run(shutdown).await }));
    }
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let at_end: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM projection_checkpoints WHERE projector = ANY($1) AND position = $2",
        )
        .bind(&names)
        .bind(last)
        .fetch_one(&pool)
        .await
        .unwrap();
        if at_end == 3 {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "partitions stuck");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    stop.send(true).unwrap();
    for task in running {
        task.await.unwrap().unwrap();
    }
    let mut parts = snapshot(&pool, false).await;
    parts.remove("projection_checkpoints");
    assert_eq!(parts, whole, "row by row, every table");
    // Each partition applied exactly its SIMs' events.
    let rendered = env.metrics.render();
    for index in 0..3u32 {
        let mine = events
            .iter()
            .filter(|e| partition_of(&e.iccid, 3) == index)
            .count();
        let line = format!("projector_events_applied_total{{projector=\"{PROJECTOR}-p{index}\"}} {mine}");
        assert!(rendered.contains(&line), "{line} in\n{rendered}");
    }
    assert!(events
        .iter()
        .any(|e| partition_of(&e.iccid, 3) != partition_of(&events[0].iccid, 3)));

    // Another replica records another layout: a partition of the old one stops applying.
    checkpoint::set_layout(&pool, PROJECTOR, 2).await.unwrap();
    let old = env
        .projector_for(
            env.cache().await,
            env.settings(None).for_share(Share { index: 0, of: 3 }),
        )
        .await;
    let (_stop, shutdown) = tokio::sync::watch::channel(false);
    let stopped = tokio::time::timeout(std::time::Duration::from_secs(10), old.run(shutdown))
        .await
        .expect("the old layout's projector stops by itself");
    assert!(
        matches!(stopped, Err(projectors::ProjectorError::LayoutChanged(_))),
        "{stopped:?}"
    );
    env.cleanup().await;
}

/// A closed day reconciled below what was streamed: the difference is a (negative) usage row
/// of that day, so the day's raw rows and its daily rollup add up to the provider's total.
#[sqlx::test(migrator = "eventstore::MIGRATOR")]
async fn a_reconciled_day_adds_up_to_the_polled_total(pool: PgPool) {
    let w = Writer::new(&pool);
    w.sim(SIM_A, register(SIM_A, "901405100000001", "pump A")).await;
    let (start, end) = (at(1, 0, 0), at(2, 0, 0));
    w.sim_at(
        SIM_A,
        domain::SimCommand::RecordUsage {
            period_start: start,
            period_end: end,
            data_bytes: 1_500,
            sms_mo: 2,
            sms_mt: 0,
        },
        at(1, 22, 0),
    )
    .await;
    // Reconciled the next morning (after the period): its row stays inside the closed day.
    w.sim_at(
        SIM_A,
        domain::SimCommand::ReconcileUsage {
            period_start: start,
            period_end: end,
            data_bytes: 1_200,
            sms_mo: 2,
            sms_mt: 0,
        },
        at(2, 6, 0),
    )
    .await;
    let events = global_log(&pool).await;
    let env = Env::new(pool.clone()).await;
    env.project(&events).await;
    assert_eq!(usage_totals(&pool).await, (1_200, 1_200));
    let day: Option<i64> = sqlx::query_scalar(
        "SELECT sum(data_bytes)::bigint FROM sim_usage_daily WHERE iccid = $1 AND bucket < $2",
    )
    .bind(SIM_A)
    .bind(end)
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(day, Some(1_200), "the difference belongs to the reconciled day");
    env.cleanup().await;
}
