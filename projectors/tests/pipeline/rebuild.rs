//! `projectors rebuild`: fresh tables from the Postgres log, swapped in, equal to the live ones.

use std::time::Duration;

use crate::common::*;
use domain::SimCommand;
use projectors::{rebuild, RebuildMetrics, RebuildOptions};
use readmodel::{load_sim, sim_view_as_of};
use sqlx::PgPool;
use tokio::sync::watch;

async fn index_names(pool: &PgPool) -> Vec<(String, String)> {
    sqlx::query_as(
        "SELECT tablename::text, indexname::text FROM pg_indexes WHERE schemaname = 'public' \
         AND tablename IN ('sims', 'sim_quotas', 'sms_messages', 'sim_status_history', 'sim_usage', \
         'sim_usage_hourly', 'sim_usage_daily', 'projection_versions', 'projection_checkpoints') ORDER BY 1, 2",
    )
    .fetch_all(pool)
    .await
    .unwrap()
}

/// The parked events, as `(aggregate_id, event_type, position)`.
async fn parked_events(pool: &PgPool) -> Vec<(String, String, i64)> {
    sqlx::query_as(
        "SELECT aggregate_id, event_type, position FROM parked_events WHERE projector = $1 ORDER BY position",
    )
    .bind(PROJECTOR)
    .fetch_all(pool)
    .await
    .unwrap()
}

/// With `parked` events parked by the live projector, a rebuild (by `method`) parks the same
/// and leaves every table as the live projector left it.
async fn assert_a_rebuild_parks_what_is_parked(
    pool: &PgPool,
    parked: u64,
    method: projectors::rebuild::Method,
) {
    let live = snapshot(pool, true).await;
    let live_parked = parked_events(pool).await;
    assert_eq!(live_parked.len() as u64, parked);

    let report = rebuild(pool, &RebuildOptions::new(PROJECTOR)).await.unwrap();
    assert_eq!((report.method, report.parked), (method, parked));
    assert_eq!(snapshot(pool, true).await, live);
    assert_eq!(parked_events(pool).await, live_parked);
}

async fn rebuild_schemas(pool: &PgPool) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM pg_namespace WHERE nspname LIKE 'rebuild_%'")
        .fetch_one(pool)
        .await
        .unwrap()
}

/// Every SIM row equals the replay of its events; usage sums equal the log's deltas.
async fn assert_consistent_with_the_log(pool: &PgPool) {
    let events = global_log(pool).await;
    let iccids: std::collections::BTreeSet<String> = events.iter().map(|e| e.iccid.clone()).collect();
    for iccid in iccids {
        let of_sim: Vec<_> = events.iter().filter(|e| e.iccid == iccid).cloned().collect();
        assert_eq!(
            load_sim(pool, &iccid).await.unwrap(),
            sim_view_as_of(&of_sim),
            "{iccid}"
        );
    }
    let deltas: i64 = events
        .iter()
        .filter(|e| e.event_type == "UsageRecorded")
        .map(|e| e.payload["delta_data_bytes"].as_i64().unwrap())
        .sum();
    for table in [
        "sim_usage",
        "sim_usage_hourly",
        "sim_usage_daily",
        "fleet_usage_hourly",
        "fleet_usage_daily",
    ] {
        assert_eq!(data_bytes_total(pool, table).await, deltas, "{table}");
    }
    assert_rollups_equal_a_recomputation(pool).await;
}

/// Every rollup, bucket by bucket, equals a recomputation from `sim_usage`: continuous
/// aggregates on TimescaleDB (materialized part and real-time part alike), tables on plain
/// Postgres.
async fn assert_rollups_equal_a_recomputation(pool: &PgPool) {
    for (table, width, key) in [
        ("sim_usage_hourly", "1 hour", "iccid, "),
        ("sim_usage_daily", "1 day", "iccid, "),
        ("fleet_usage_hourly", "1 hour", ""),
        ("fleet_usage_daily", "1 day", ""),
    ] {
        let rollup = format!(
            "SELECT {key}bucket, data_bytes, sms_mo, sms_mt FROM {table} \
             WHERE data_bytes <> 0 OR sms_mo <> 0 OR sms_mt <> 0"
        );
        let recomputed = format!(
            "SELECT {key}bucket, data_bytes, sms_mo, sms_mt FROM ( \
                 SELECT {key}date_bin(INTERVAL '{width}', observed_at, TIMESTAMPTZ 'epoch') AS bucket, \
                        sum(data_bytes)::bigint AS data_bytes, sum(sms_mo)::bigint AS sms_mo, \
                        sum(sms_mt)::bigint AS sms_mt \
                 FROM sim_usage GROUP BY {key}bucket) r \
             WHERE data_bytes <> 0 OR sms_mo <> 0 OR sms_mt <> 0"
        );
        let differing: i64 = sqlx::query_scalar(&format!(
            "SELECT count(*) FROM (({rollup} EXCEPT {recomputed}) UNION ALL ({recomputed} EXCEPT {rollup})) d"
        ))
        .fetch_one(pool)
        .await
        .unwrap();
        assert_eq!(
            differing, 0,
            "{table}: buckets differing from a recomputation from sim_usage"
        );
    }
}

#[sqlx::test(migrator = "eventstore::MIGRATOR")]
async fn a_rebuild_equals_the_live_tables_and_the_live_projector_goes_on(pool: PgPool) {
    let (env, events, projector) = projected_scenario(&pool).await;
    let live = snapshot(&pool, true).await;
    let indexes = index_names(&pool).await;
    assert!(live["sims"].len() == 2 && live["sim_usage"].len() == 2);

    let oid = || async {
        let oid: i64 = sqlx::query_scalar("SELECT 'public.sims'::regclass::oid::bigint")
            .fetch_one(&pool)
            .await
            .unwrap();
        oid
    };
    let live_oid = oid().await;
    let metrics = platform::Metrics::new();
    let mut options = RebuildOptions::new(PROJECTOR);
    options.batch_size = 4;
    options.metrics = Some(RebuildMetrics::register(metrics.registry()));
    let report = rebuild(&pool, &options).await.unwrap();
    assert_eq!(report.events, events.len() as u64);
    assert_eq!(report.last_position, events.last().unwrap().position);
    assert_eq!(snapshot(&pool, true).await, live, "row by row, every table");
    assert_eq!(index_names(&pool).await, indexes, "the migration's index names");
    assert_eq!(rebuild_schemas(&pool).await, 0, "old tables dropped");
    assert_ne!(oid().await, live_oid, "fresh tables swapped in");
    let rendered = metrics.render();
    assert!(
        rendered.contains(&format!("projection_rebuild_events_total {}", events.len())),
        "{rendered}"
    );
    assert!(rendered.contains("projection_rebuild_progress 1"), "{rendered}");

    // The live projector carries on over the swapped tables: an old message is a duplicate,
    // new ones apply.
    let w = Writer::new(&pool);
    w.sim(SIM_A, SimCommand::SetImeiLock { enabled: false }).await;
    let c = "8988303000000000027";
    w.sim(c, register(c, "901405100000003", "new")).await;
    env.publish_again(&events[3]).await;
    let duplicates_before = env.counter("projector_duplicates_total");
    env.project_the_rest(&projector, events.len()).await;
    // The old message finds its event applied (by the rebuild); the new ones apply, the
    // first of them catching up for the rest.
    assert!(env.counter("projector_duplicates_total") > duplicates_before);
    assert!(!load_sim(&pool, SIM_A).await.unwrap().unwrap().imei_lock);
    assert_consistent_with_the_log(&pool).await;
    env.cleanup().await;
}

#[sqlx::test(migrator = "eventstore::MIGRATOR")]
async fn a_rebuild_while_events_keep_coming(pool: PgPool) {
    let events = scenario(&pool).await;
    let env = Env::new(pool.clone()).await;
    env.publish_all(&events).await;
    let projector = env.projector().await;
    let (stop, shutdown) = watch::channel(false);
    let live = {
        let projector = projector.clone();
        tokio::spawn(async move { projector.run(shutdown).await })
    };

    // The "relay": writes more events and publishes them in log order while the rebuild runs.
    let writer = {
        let pool = pool.clone();
        let env_stream = (env.js.clone(), env.prefix.clone());
        tokio::spawn(async move {
            let w = Writer::new(&pool);
            let mut published = global_log(&pool).await.len();
            for i in 0..12u64 {
                w.sim_at(
                    SIM_A,
                    SimCommand::RecordUsage {
                        period_start: at(5, 0, 0),
                        period_end: at(6, 0, 0),
                        data_bytes: 100 * (i + 1),
                        sms_mo: 0,
                        sms_mt: 0,
                    },
                    at(5, i as u32, 30),
                )
                .await;
                w.sim(
                    SIM_A,
                    SimCommand::UpdateDetails {
                        label: Some(Some(format!("label {i}"))),
                        tags: None,
                    },
                )
                .await;
                let log = global_log(&pool).await;
                for event in &log[published..] {
                    publish_to(&env_stream.0, &env_stream.1, event).await;
                }
                published = log.len();
                tokio::time::sleep(Duration::from_millis(15)).await;
            }
        })
    };
    let mut options = RebuildOptions::new(PROJECTOR);
    options.batch_size = 2;
    let report = rebuild(&pool, &options).await.unwrap();
    writer.await.unwrap();
    let all = global_log(&pool).await;
    assert!(report.events as usize >= events.len());
    env.wait_for_checkpoint(all.last().unwrap().position).await;
    env.wait_until_drained().await;
    stop.send(true).unwrap();
    live.await.unwrap().unwrap();

    assert_consistent_with_the_log(&pool).await;
    assert_eq!(
        load_sim(&pool, SIM_A).await.unwrap().unwrap().label.as_deref(),
        Some("label 11")
    );
    // And a second rebuild, now that everything is in, equals the live result row by row.
    let settled = snapshot(&pool, true).await;
    rebuild(&pool, &RebuildOptions::new(PROJECTOR)).await.unwrap();
    assert_eq!(snapshot(&pool, true).await, settled);
    env.cleanup().await;
}

#[sqlx::test(migrator = "eventstore::MIGRATOR")]
async fn only_one_rebuild_at_a_time(pool: PgPool) {
    let mut holder = pool.acquire().await.unwrap();
    sqlx::query("SELECT pg_advisory_lock($1)")
        .bind(projectors::rebuild::REBUILD_LOCK_KEY)
        .execute(&mut *holder)
        .await
        .unwrap();
    let refused = rebuild(&pool, &RebuildOptions::new(PROJECTOR)).await;
    assert!(
        matches!(refused, Err(projectors::RebuildError::AlreadyRunning)),
        "{refused:?}"
    );
    sqlx::query("SELECT pg_advisory_unlock_all()")
        .execute(&mut *holder)
        .await
        .unwrap();
    rebuild(&pool, &RebuildOptions::new(PROJECTOR)).await.unwrap();
}

/// The bulk load within a memory bound of a few rows (so it writes and lets its rows go on
/// every page, and loads them again), and the load in batches, each equal the live tables.
#[sqlx::test(migrator = "eventstore::MIGRATOR")]
async fn the_bulk_load_within_a_tiny_memory_bound_and_the_batches_equal_the_live_tables(pool: PgPool) {
    let (env, events, _) = projected_scenario(&pool).await;
    let live = snapshot(&pool, true).await;

    let mut options = RebuildOptions::new(PROJECTOR);
    options.batch_size = 3;
    options.max_rows_in_memory = 2;
    let report = rebuild(&pool, &options).await.unwrap();
    assert_eq!(report.method, projectors::rebuild::Method::Bulk);
    assert!(report.evictions > 0, "{report:?}");
    assert_eq!(report.events, events.len() as u64);
    assert_eq!(snapshot(&pool, true).await, live, "bulk, rows let go");

    options.method = projectors::rebuild::Method::Batches;
    let report = rebuild(&pool, &options).await.unwrap();
    assert_eq!(report.method, projectors::rebuild::Method::Batches);
    assert_eq!(snapshot(&pool, true).await, live, "in batches");
    env.cleanup().await;
}

/// `--model sms` replaces only `sms_messages`, up to the live checkpoint (an event the live
/// projector has not applied yet stays for it); `--model sims` then only `sims` and the status
/// history. The bookkeeping stays the live projector's.
#[sqlx::test(migrator = "eventstore::MIGRATOR")]
async fn a_rebuild_of_one_read_model_replaces_only_its_tables_up_to_the_live_checkpoint(pool: PgPool) {
    let (env, events, projector) = projected_scenario(&pool).await;
    let live = snapshot(&pool, true).await;
    assert!(!live["sms_messages"].is_empty(), "the scenario sends SMS");

    // Damage both tables by hand; write an event the live projector has not applied.
    sqlx::query("UPDATE sms_messages SET status = 'damaged'")
        .execute(&pool)
        .await
        .unwrap();
    sqlx::query("UPDATE sims SET label = 'damaged'")
        .execute(&pool)
        .await
        .unwrap();
    Writer::new(&pool)
        .sim(
            SIM_A,
            SimCommand::UpdateDetails {
                label: Some(Some("after the checkpoint".into())),
                tags: None,
            },
        )
        .await;

    let mut options = RebuildOptions::new(PROJECTOR);
    options.models = vec![projectors::ReadModel::Sms];
    let report = rebuild(&pool, &options).await.unwrap();
    assert_eq!(report.tables, vec!["sms_messages".to_owned()]);
    let after = snapshot(&pool, true).await;
    assert_eq!(after["sms_messages"], live["sms_messages"], "restored");
    assert_ne!(after["sims"], live["sims"], "not touched: still damaged");
    for table in [
        "projection_versions",
        "projection_checkpoints",
        "sim_quotas",
        "sim_usage",
    ] {
        assert_eq!(after[table], live[table], "{table}");
    }

    options.models = vec![projectors::ReadModel::Sims];
    let report = rebuild(&pool, &options).await.unwrap();
    assert_eq!(
        report.tables,
        vec![
            "sims".to_owned(),
            "sim_status_history".to_owned(),
            "sim_connectivity_history".to_owned()
        ]
    );
    assert_eq!(
        snapshot(&pool, true).await,
        live,
        "everything as the live projector left it"
    );
    assert_eq!(rebuild_schemas(&pool).await, 0);

    // The event after the checkpoint is the live projector's to apply, once.
    env.project_the_rest(&projector, events.len()).await;
    assert_eq!(
        load_sim(&pool, SIM_A).await.unwrap().unwrap().label.as_deref(),
        Some("after the checkpoint")
    );
    assert_consistent_with_the_log(&pool).await;
    env.cleanup().await;
}

/// What the live projector parks, the rebuild parks: an event no code decodes (and the one
/// behind it), and a row Postgres refuses, which sends the bulk load back to batches.
#[sqlx::test(migrator = "eventstore::MIGRATOR")]
async fn a_rebuild_parks_what_the_live_projector_parks(pool: PgPool) {
    scenario(&pool).await;
    append_raw_sim_event(&pool, SIM_A, "SimTeleported", "9", r#"{"to": "mars"}"#, "{}").await;
    let env = Env::new(pool.clone()).await;
    let log = global_log(&pool).await;
    let projector = env.project(&log).await;
    assert_a_rebuild_parks_what_is_parked(&pool, 1, projectors::rebuild::Method::Bulk).await;

    // A label the schema refuses from now on: the live projector parks it alone; the bulk
    // load fails on it at its write and starts over in batches, which park it alone too.
    write_a_label_the_schema_refuses(&pool).await;
    env.project_the_rest(&projector, log.len()).await;
    assert_a_rebuild_parks_what_is_parked(&pool, 2, projectors::rebuild::Method::Batches).await;
    env.cleanup().await;
}

/// Needs TimescaleDB (printed as not run on plain PostgreSQL): usage reports for a day whose
/// chunk is compressed (a report 7 days late) are written into the compressed chunk and reach
/// every continuous aggregate, and a rebuild then keeps every aggregate equal to a
/// recomputation from `sim_usage`.
#[sqlx::test(migrator = "eventstore::MIGRATOR")]
async fn late_usage_into_a_compressed_chunk_reaches_the_continuous_aggregates(pool: PgPool) {
    if eventstore::ReadModelStorage::recorded(&pool).await.unwrap()
        != Some(eventstore::ReadModelStorage::TimescaleDb)
    {
        eprintln!(
            "NOT RUN: late_usage_into_a_compressed_chunk_reaches_the_continuous_aggregates needs TimescaleDB \
             (this database's read models are plain PostgreSQL tables)"
        );
        return;
    }
    let (env, events, projector) = projected_scenario(&pool).await;
    env.wait_for_checkpoint(events.last().unwrap().position).await;
    assert_consistent_with_the_log(&pool).await;

    sqlx::query("SELECT compress_chunk(c, if_not_compressed => true) FROM show_chunks('sim_usage') c")
        .fetch_all(&pool)
        .await
        .unwrap();
    let compressed: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM timescaledb_information.chunks WHERE hypertable_name = 'sim_usage' AND is_compressed",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert!(compressed > 0, "the usage chunks are compressed");

    let w = Writer::new(&pool);
    for (i, minute) in [5u32, 35].into_iter().enumerate() {
        w.sim_at(
            SIM_A,
            SimCommand::RecordUsage {
                period_start: at(1, 0, 0),
                period_end: at(2, 0, 0),
                data_bytes: 5_000_000 * (i as u64 + 1),
                sms_mo: 10,
                sms_mt: 10,
            },
            at(1, 20, minute),
        )
        .await;
    }
    let all = env.project_the_rest(&projector, events.len()).await;
    env.wait_for_checkpoint(all.last().unwrap().position).await;
    assert_consistent_with_the_log(&pool).await;

    rebuild(&pool, &RebuildOptions::new(PROJECTOR)).await.unwrap();
    assert_consistent_with_the_log(&pool).await;
    env.cleanup().await;
}
