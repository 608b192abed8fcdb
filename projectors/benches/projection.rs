//! Projection throughput: the live projector draining a stream that already holds every event,
//! commit-to-read-model latency while events arrive at a paced rate, and `projectors::rebuild`
//! replaying the whole log. Run: `cargo bench -p projectors --bench projection`.
//!
//! A fresh database on the server of `BENCH_DATABASE_URL` (default: the local PostgreSQL), a
//! stream and subject prefix of the run's own on `BENCH_NATS_URL` and a Redis key prefix of
//! its own on `BENCH_REDIS_URL`; all removed at the end. Events are real SIM and quota events
//! written through `eventstore::EventStore` (one command per transaction) and published by the
//! real relay, which keeps running in this process as it does in `projectors`.
//!
//! `BENCH_SIMS` (default 5000, 5 events each), `BENCH_RATES` (default `200,500` events/s),
//! `BENCH_SECONDS` (default 15), `BENCH_REBUILD_BATCH` (default: the rebuild's default page, 20,000),
//! `BENCH_PROJECTOR_CACHE=off` (the projector without Redis), `BENCH_USAGE=off` (no usage
//! reports: 4 events per SIM, none adding into the shared fleet rollup rows).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_nats::jetstream;
use eventstore::{EventStore, LogCursor};
use projectors::{ConsumerSettings, Projector, ProjectorMetrics, ProjectorSettings, RebuildOptions};
use readmodel::{Cache, CacheConfig};
use sqlx::PgPool;
use testkit::bench::{
    env_or, fill_and_report, latency_cells, nats_url, paced_rates, paced_writers, reset_read_models,
    spawn_paced_relabels, stopped, wait_until, Background, BenchDatabase, READ_MODEL_TABLES,
};

const PROJECTOR: &str = "read-models";
/// Concurrent writers while filling the log (each runs one command at a time).
const FILL_WRITERS: usize = 16;
/// How often the latency probe reads the projector's checkpoint.
const PROBE_INTERVAL: Duration = Duration::from_millis(5);
/// The read models compared between the live projector and the rebuild: every one but the
/// SMS table, without the bookkeeping.
fn compared_tables() -> Vec<&'static str> {
    let left_out = ["sms_messages", "projection_versions", "projection_checkpoints"];
    READ_MODEL_TABLES
        .into_iter()
        .filter(|table| !left_out.contains(table))
        .collect()
}

async fn checkpoint(pool: &PgPool) -> Option<LogCursor> {
    let row: Option<(String, i64)> = sqlx::query_as(
        "SELECT transaction_id::text, position FROM projection_checkpoints WHERE projector = $1",
    )
    .bind(PROJECTOR)
    .fetch_optional(pool)
    .await
    .unwrap();
    row.map(|(transaction_id, position)| LogCursor {
        transaction_id: transaction_id.parse().unwrap(),
        position,
    })
}

/// An order-independent fingerprint of each compared read model.
async fn fingerprints(pool: &PgPool) -> Vec<(String, i64, String)> {
    let mut all = Vec::new();
    for table in compared_tables() {
        let (rows, digest): (i64, Option<String>) = sqlx::query_as(&format!(
            "SELECT count(*), md5(string_agg(t::text, '|' ORDER BY t::text)) FROM {table} t"
        ))
        .fetch_one(pool)
        .await
        .unwrap();
        all.push((table.to_string(), rows, digest.unwrap_or_default()));
    }
    all
}

#[tokio::main]
async fn main() {
    let sims: usize = env_or("BENCH_SIMS", 5000);
    let rates = paced_rates("200,500");
    let seconds: u64 = env_or("BENCH_SECONDS", 15);
    let rebuild_batch: i64 = env_or("BENCH_REBUILD_BATCH", RebuildOptions::new(PROJECTOR).batch_size);
    // BENCH_USAGE=off leaves the usage reports out (every one adds into the same fleet rollup
    // bucket: the rows partitions contend for).
    let usage = std::env::var("BENCH_USAGE").map_or(true, |v| v != "off");
    let redis_url = std::env::var("BENCH_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
    let run_id = uuid::Uuid::new_v4().simple().to_string();
    let redis_prefix = format!("bench-projection-{run_id}");
    // The projector's own pool size in production is 5 (DB_MAX_CONNECTIONS); the writers and
    // the probe share this one, and the projector uses one connection at a time.
    let database = BenchDatabase::create("projection", 80).await;
    let pool = database.pool.clone();
    let store = EventStore::new(pool.clone());

    let (stored, fill_secs) = fill_and_report(&store, &pool, sims, FILL_WRITERS, usage).await;

    // The relay publishes the backlog before the projector starts, then stays up for the
    // paced runs.
    let nats = async_nats::connect(nats_url()).await.expect("NATS");
    let js = jetstream::new(nats.clone());
    let relay_config = relay::RelayConfig {
        stream: format!("BENCH_PROJ_{run_id}"),
        subject_prefix: format!("bench{run_id}"),
        ..relay::RelayConfig::default()
    };
    let relay_registry = prometheus::Registry::new();
    let relay = relay::Relay::new(relay_config.clone(), pool.clone(), nats.clone(), &relay_registry).unwrap();
    let published = relay.metrics().events_published.clone();
    let relay = Background::spawn(|shutdown| relay.run(stopped(shutdown)));
    let started = Instant::now();
    wait_until("the relay", Duration::from_secs(600), || {
        published.get() >= stored as u64
    })
    .await;
    println!(
        "relay: {stored} events published in {:.1} s\n",
        started.elapsed().as_secs_f64()
    );

    // BENCH_PROJECTOR_CACHE=off runs the projector without Redis, to show Redis's share.
    let with_cache = std::env::var("BENCH_PROJECTOR_CACHE").map_or(true, |v| v != "off");
    let connect_cache = || async {
        if with_cache {
            Cache::connect(CacheConfig::new(&redis_url, &redis_prefix)).await
        } else {
            Cache::disabled()
        }
    };
    let cache = connect_cache().await;
    let registry = prometheus::Registry::new();
    let metrics = ProjectorMetrics::register(&registry);
    let projector = Projector::new(
        pool.clone(),
        nats.clone(),
        cache,
        metrics.clone(),
        ProjectorSettings {
            name: PROJECTOR.to_owned(),
            stream: relay_config.stream.clone(),
            filter_subject: relay_config.stream_subjects(),
            subject_prefix: relay_config.subject_prefix.clone(),
            consumer: ConsumerSettings::default(),
            message_limit: None,
            share: eventstore::Share::WHOLE,
        },
    )
    .await
    .unwrap();
    let applied = metrics.applied.with_label_values(&[PROJECTOR]);

    // 0. The same backlog in 2 partitions on 2 replicas (two `Partitions` of 2, as two
    //    processes would run them), from empty read models; then everything is reset and the
    //    unpartitioned projector (the baseline of this run) does the same.
    let partitioned = {
        projectors::checkpoint::set_layout(&pool, PROJECTOR, 2)
            .await
            .unwrap();
        let registry = prometheus::Registry::new();
        let metrics = ProjectorMetrics::register(&registry);
        let mut replicas = Vec::new();
        let started = Instant::now();
        for _ in 0..2 {
            let cache = connect_cache().await;
            let partitions = projectors::partitions::Partitions::new(
                pool.clone(),
                nats.clone(),
                cache,
                metrics.clone(),
                projector.settings().clone(),
                2,
            );
            replicas.push(Background::spawn(|shutdown| async move {
                partitions.run(shutdown).await.unwrap();
            }));
        }
        let per_partition: Vec<_> = (0..2)
            .map(|k| metrics.applied.with_label_values(&[&format!("{PROJECTOR}-p{k}")]))
            .collect();
        // When each partition applied its first event and its last (where the time goes:
        // taking the partitions, or applying them).
        let mut first: [Option<f64>; 2] = [None; 2];
        let mut last_change: [(u64, f64); 2] = [(0, 0.0); 2];
        wait_until("the partitions", Duration::from_secs(900), || {
            let now = started.elapsed().as_secs_f64();
            for (k, counter) in per_partition.iter().enumerate() {
                let applied = counter.get();
                if applied > 0 && first[k].is_none() {
                    first[k] = Some(now);
                }
                if applied != last_change[k].0 {
                    last_change[k] = (applied, now);
                }
            }
            per_partition.iter().map(|c| c.get()).sum::<u64>() >= stored as u64
        })
        .await;
        let seconds = started.elapsed().as_secs_f64();
        for k in 0..2 {
            println!(
                "partition {k}: first event applied at {:.2} s, last at {:.2} s ({} events)",
                first[k].unwrap_or(f64::NAN),
                last_change[k].1,
                last_change[k].0
            );
        }
        let held = metrics.partitions_held.get();
        for replica in replicas {
            replica.stop(Duration::from_secs(15)).await;
        }
        assert_eq!(held, 1, "each replica held one partition");
        let split: Vec<u64> = per_partition.iter().map(|c| c.get()).collect();
        assert_eq!(
            split.iter().sum::<u64>(),
            stored as u64,
            "each event applied once"
        );
        reset_read_models(&pool).await;
        projectors::checkpoint::set_layout(&pool, PROJECTOR, 1)
            .await
            .unwrap();
        (seconds, split)
    };

    // 1. Live, backlog: the stream holds every event; the projector starts.
    let started = Instant::now();
    let live = {
        let projector = projector.clone();
        Background::spawn(|shutdown| async move {
            projector.run(shutdown).await.unwrap();
        })
    };
    wait_until("the live projector", Duration::from_secs(900), || {
        applied.get() >= stored as u64
    })
    .await;
    let drained = started.elapsed().as_secs_f64();
    assert_eq!(applied.get(), stored as u64, "each event applied once");
    let projected: i64 = sqlx::query_scalar("SELECT count(*) FROM sims")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(projected as usize, sims, "every SIM projected");

    println!("| projection run | events | seconds | events/s |");
    println!("|---|---|---|---|");
    println!(
        "| live: stream already holds every event ({}) | {stored} | {drained:.2} | {:.0} |",
        if with_cache {
            "Postgres + Redis per event"
        } else {
            "Postgres only, cache disabled"
        },
        stored as f64 / drained
    );
    let (partitioned_secs, split) = partitioned;
    println!(
        "| live: the same, 2 partitions on 2 replicas (applied {split:?}) | {stored} | {partitioned_secs:.2} | {:.0} |",
        stored as f64 / partitioned_secs
    );
    println!(
        "\n2 partitions / 1: {:.2}× the unpartitioned rate of this run",
        drained / partitioned_secs
    );
    println!(
        "live / write side (the fill's rate through EventStore::execute): {:.2}×\n",
        (stored as f64 / drained) / (stored as f64 / fill_secs)
    );

    // 2. Live, while events arrive at a paced rate: commit → the checkpoint passing the event.
    let mut paced_rows = Vec::new();
    let mut total_events = stored as u64;
    for (round, rate) in rates.iter().copied().enumerate() {
        let committed: Arc<Mutex<BTreeMap<LogCursor, Instant>>> = Arc::default();
        let latencies: Arc<Mutex<Vec<f64>>> = Arc::default();
        let writer_count = paced_writers(rate);
        let writing = Arc::new(AtomicUsize::new(writer_count));
        let probe = {
            let pool = pool.clone();
            let committed = committed.clone();
            let latencies = latencies.clone();
            let writing = writing.clone();
            tokio::spawn(async move {
                loop {
                    let done_writing = writing.load(Ordering::Acquire) == 0;
                    let reached = checkpoint(&pool).await;
                    let now = Instant::now();
                    let waiting = {
                        let mut committed = committed.lock().unwrap();
                        if let Some(reached) = reached {
                            let later = committed.split_off(&LogCursor {
                                transaction_id: reached.transaction_id,
                                position: reached.position + 1,
                            });
                            let passed = std::mem::replace(&mut *committed, later);
                            latencies.lock().unwrap().extend(
                                passed
                                    .values()
                                    .map(|at| now.saturating_duration_since(*at).as_secs_f64() * 1000.0),
                            );
                        }
                        committed.len()
                    };
                    if done_writing && waiting == 0 {
                        return now;
                    }
                    tokio::time::sleep(PROBE_INTERVAL).await;
                }
            })
        };
        let written = Arc::new(AtomicUsize::new(0));
        let write_started = Instant::now();
        let writers = {
            let (committed, written, writing) = (committed.clone(), written.clone(), writing.clone());
            spawn_paced_relabels(
                &store,
                sims,
                rate,
                Duration::from_secs(seconds),
                round,
                move |events, at| {
                    written.fetch_add(events.len(), Ordering::Relaxed);
                    let mut committed = committed.lock().unwrap();
                    committed.extend(events.iter().map(|e| (LogCursor::after(e), at)));
                },
                move || {
                    writing.fetch_sub(1, Ordering::Release);
                },
            )
        };
        for writer in writers {
            writer.await.unwrap();
        }
        let writes_ended = Instant::now();
        let write_secs = write_started.elapsed().as_secs_f64();
        let caught_up = tokio::time::timeout(Duration::from_secs(300), probe)
            .await
            .expect("the projector caught up with the paced writes")
            .unwrap();
        // The probe reads the checkpoint every PROBE_INTERVAL, so this is exact to 5 ms.
        let lag_cleared_ms = caught_up.saturating_duration_since(writes_ended).as_secs_f64() * 1000.0;
        total_events += written.load(Ordering::Relaxed) as u64;
        let mut latencies = std::mem::take(&mut *latencies.lock().unwrap());
        let cells = latency_cells(&mut latencies, write_secs);
        paced_rows.push(format!(
            "| {rate} | {writer_count} | {cells} | {lag_cleared_ms:.0} |"
        ));
    }
    wait_until("the last paced events", Duration::from_secs(60), || {
        applied.get() >= total_events
    })
    .await;
    live.stop(Duration::from_secs(15)).await;
    relay.stop(Duration::from_secs(15)).await;

    // 3. Rebuild: the whole log replayed into fresh tables, then swapped in; the bulk load,
    //    then (the baseline of the same run) a transaction per batch as the live path applies.
    let before = fingerprints(&pool).await;
    for method in [
        projectors::rebuild::Method::Bulk,
        projectors::rebuild::Method::Batches,
    ] {
        let mut options = RebuildOptions::new(PROJECTOR);
        options.batch_size = rebuild_batch;
        options.method = method;
        let started = Instant::now();
        let report = projectors::rebuild(&pool, &options).await.expect("rebuild");
        let rebuilt = started.elapsed().as_secs_f64();
        let after = fingerprints(&pool).await;
        println!(
            "| rebuild (`projectors::rebuild`, {method:?}, pages of {rebuild_batch}) | {} | {rebuilt:.2} | {:.0} |\n",
            report.events,
            report.events as f64 / rebuilt
        );
        assert_eq!(report.events, total_events, "the rebuild replays the whole log");
        for ((table, rows_before, digest_before), (_, rows_after, digest_after)) in before.iter().zip(&after)
        {
            assert_eq!(
                (rows_before, digest_before),
                (rows_after, digest_after),
                "{table}: the rebuild ({method:?}) differs from the live projection"
            );
        }
    }
    println!(
        "rebuild = live projection, row for row: {:?}\n",
        compared_tables()
    );

    println!(
        "| offered events/s | writers | events | achieved events/s | commit→checkpoint p50 ms | p90 ms | p99 ms | max ms | lag 0 after the load, ms |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    for row in paced_rows {
        println!("{row}");
    }

    let _ = js.delete_stream(&relay_config.stream).await;
    if let Ok(client) = redis::Client::open(redis_url.as_str()) {
        if let Ok(mut redis) = client.get_multiplexed_async_connection().await {
            let keys: Vec<String> = redis::cmd("KEYS")
                .arg(format!("{redis_prefix}:*"))
                .query_async(&mut redis)
                .await
                .unwrap_or_default();
            for chunk in keys.chunks(1000) {
                let _: Result<(), _> = redis::cmd("DEL").arg(chunk).query_async(&mut redis).await;
            }
        }
    }
    database.drop_database().await;
}
