//! Relay throughput (a backlog of events published and acknowledged) and commit-to-receive
//! latency (from the writing transaction's commit to a JetStream subscriber on the stream).
//! Run: `cargo bench -p relay --bench relay`.
//!
//! A fresh database on the server of `BENCH_DATABASE_URL` (default: the local PostgreSQL) and a
//! stream and subject prefix of the run's own on `BENCH_NATS_URL`; both are removed at the end.
//! Events are real SIM and quota events written through `eventstore::EventStore`, one command
//! per transaction, as the command API and the sync connector write them.
//!
//! `BENCH_SIMS` (default 5000, 5 events each) sizes the backlog; `BENCH_RATES` (default
//! `200,1000`, events/s) and `BENCH_SECONDS` (default 15) the paced latency runs.
//! `BENCH_SETUP_SQL` runs once after the migrations; with `BENCH_DURING_SQL` each paced rate
//! runs a second time while that SQL runs in a loop on a connection of its own (the
//! TimescaleDB jobs' stall: a continuous-aggregate refresh, a compression).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_nats::jetstream::{self, consumer};
use chrono::Utc;
use eventstore::{EventStore, StoredEvent};
use futures::StreamExt;
use relay::{Relay, RelayConfig, HEADER_POSITION};
use sqlx::{Executor, PgPool};
use testkit::bench::{
    env_or, fill_and_report, latency_cells, nats_url, paced_rates, quantile, spawn_paced_relabels, stopped,
    wait_until, Background, BenchDatabase,
};
use tokio::sync::watch;

/// Concurrent writers while filling the log (each runs one command at a time).
const FILL_WRITERS: usize = 16;
/// Runs `sql` again and again on a connection of its own until `stopped`; how many runs and the
/// longest one. `BENCH_DURING_AS_WRITER=1`: the job's transactions hold the log's horizon as
/// every transaction did before `event_log_horizon()` (the old behaviour, to compare).
async fn background_job(pool: PgPool, sql: String, mut stopped: watch::Receiver<bool>) -> (u32, f64) {
    let (mut runs, mut longest) = (0u32, 0f64);
    let mut conn = pool.acquire().await.unwrap().detach();
    let setup = if std::env::var("BENCH_DURING_AS_WRITER").is_ok_and(|v| v == "1") {
        "SET application_name = 'event-writer (as the old horizon)'; SET statement_timeout = 0"
    } else {
        "SET statement_timeout = 0"
    };
    conn.execute(setup).await.unwrap();
    while !*stopped.borrow() {
        let started = Instant::now();
        if let Err(error) = conn.execute(sql.as_str()).await {
            panic!("BENCH_DURING_SQL: {error}");
        }
        runs += 1;
        longest = longest.max(started.elapsed().as_secs_f64());
        let _ = tokio::time::timeout(Duration::from_millis(100), stopped.changed()).await;
    }
    (runs, longest)
}

/// What the subscriber saw of one message.
#[derive(Clone, Copy)]
struct Received {
    at: Instant,
    /// Wall-clock receive time minus the event's `recorded_at` (the row's insert, inside its
    /// transaction), in milliseconds.
    since_recorded_ms: f64,
}

/// Total newly stored events according to the relay's own counter.
fn published(registry: &prometheus::Registry) -> u64 {
    registry
        .gather()
        .iter()
        .find(|family| family.name() == "relay_events_published_total")
        .and_then(|family| {
            family
                .get_metric()
                .first()
                .map(|m| m.get_counter().get_value() as u64)
        })
        .unwrap_or(0)
}

#[tokio::main]
async fn main() {
    let sims: usize = env_or("BENCH_SIMS", 5000);
    let rates = paced_rates("200,1000");
    let seconds: u64 = env_or("BENCH_SECONDS", 15);
    let run_id = uuid::Uuid::new_v4().simple().to_string();
    let database = BenchDatabase::create("relay", 80).await;
    let pool = database.pool.clone();
    let store = EventStore::new(pool.clone());
    // BENCH_SETUP_SQL: data for the background job below (say, 30 days of usage rows).
    if let Ok(setup) = std::env::var("BENCH_SETUP_SQL") {
        let started = Instant::now();
        sqlx::raw_sql(&setup)
            .execute(&pool)
            .await
            .expect("BENCH_SETUP_SQL");
        println!(
            "setup: BENCH_SETUP_SQL in {:.1} s",
            started.elapsed().as_secs_f64()
        );
    }
    // BENCH_DURING_SQL: each paced rate runs twice, alone and while this SQL runs again and
    // again on a connection of its own (a continuous-aggregate refresh, a compression job).
    let during = std::env::var("BENCH_DURING_SQL").ok();

    let (stored, _) = fill_and_report(&store, &pool, sims, FILL_WRITERS, true).await;
    println!();

    let nats = async_nats::connect(nats_url()).await.expect("NATS");
    let js = jetstream::new(nats.clone());
    let config = RelayConfig {
        stream: format!("BENCH_RELAY_{run_id}"),
        subject_prefix: format!("bench{run_id}"),
        ..RelayConfig::default()
    };
    let registry = prometheus::Registry::new();
    let relay = Relay::new(config.clone(), pool.clone(), nats.clone(), &registry).unwrap();
    let stream = relay.ensure_stream().await.unwrap();

    // The subscriber: an ordered push consumer over the whole stream, recording when each
    // position arrives.
    let received: Arc<Mutex<HashMap<i64, Received>>> = Arc::default();
    let mut messages = stream
        .create_consumer(consumer::push::OrderedConfig {
            deliver_subject: nats.new_inbox(),
            filter_subject: config.stream_subjects(),
            ..Default::default()
        })
        .await
        .unwrap()
        .messages()
        .await
        .unwrap();
    let subscriber = {
        let received = received.clone();
        tokio::spawn(async move {
            while let Some(Ok(message)) = messages.next().await {
                let at = Instant::now();
                let now = Utc::now();
                let position: i64 = message
                    .headers
                    .as_ref()
                    .and_then(|h| h.get(HEADER_POSITION))
                    .and_then(|v| v.as_str().parse().ok())
                    .expect("Sim-Position header");
                let event: StoredEvent = serde_json::from_slice(&message.payload).expect("stored event");
                let since_recorded_ms = (now - event.recorded_at).num_microseconds().unwrap() as f64 / 1000.0;
                received.lock().unwrap().insert(
                    position,
                    Received {
                        at,
                        since_recorded_ms,
                    },
                );
            }
        })
    };

    // 1. Backlog: every stored event waits in the log; the relay starts.
    let started = Instant::now();
    let relay = Background::spawn(|shutdown| relay.run(stopped(shutdown)));
    let total = stored as u64;
    wait_until("the backlog's acknowledgements", Duration::from_secs(600), || {
        published(&registry) >= total
    })
    .await;
    let acked = started.elapsed();
    wait_until("the subscriber", Duration::from_secs(120), || {
        received.lock().unwrap().len() as u64 >= total
    })
    .await;
    let delivered = started.elapsed();
    assert_eq!(published(&registry), total, "every event published exactly once");

    println!("| relay run | events | seconds | events/s |");
    println!("|---|---|---|---|");
    println!(
        "| backlog → all acknowledged by JetStream | {total} | {:.2} | {:.0} |",
        acked.as_secs_f64(),
        total as f64 / acked.as_secs_f64()
    );
    println!(
        "| backlog → all received by a JetStream subscriber | {total} | {:.2} | {:.0} |\n",
        delivered.as_secs_f64(),
        total as f64 / delivered.as_secs_f64()
    );

    // 2. Paced writes while the relay is caught up: commit → subscriber latency.
    println!(
        "| offered events/s | writers | while | events | achieved events/s | commit→received p50 ms | p90 ms | p99 ms | max ms | \
         recorded_at→received p50 ms | p99 ms |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|");
    let rounds: Vec<(u64, Option<String>)> = rates
        .iter()
        .flat_map(|rate| std::iter::once((*rate, None)).chain(during.clone().map(|sql| (*rate, Some(sql)))))
        .collect();
    for (label_round, (rate, during)) in rounds.into_iter().enumerate() {
        let committed: Arc<Mutex<Vec<(i64, Instant)>>> = Arc::default();
        let (background_stop, background_stopped) = watch::channel(false);
        let background =
            during.map(|sql| tokio::spawn(background_job(pool.clone(), sql, background_stopped)));
        let writers = {
            let committed = committed.clone();
            spawn_paced_relabels(
                &store,
                sims,
                rate,
                Duration::from_secs(seconds),
                label_round,
                move |events, at| {
                    let mut committed = committed.lock().unwrap();
                    committed.extend(events.iter().map(|e| (e.position, at)));
                },
                || {},
            )
        };
        let writer_count = writers.len();
        let write_started = Instant::now();
        for writer in writers {
            writer.await.unwrap();
        }
        let write_secs = write_started.elapsed().as_secs_f64();
        let _ = background_stop.send(true);
        let while_label = match background {
            Some(task) => {
                let (runs, longest) = task.await.unwrap();
                format!("BENCH_DURING_SQL ({runs} runs, longest {longest:.1} s)")
            }
            None => "nothing else".to_owned(),
        };
        let committed = std::mem::take(&mut *committed.lock().unwrap());
        wait_until(
            "the paced events at the subscriber",
            Duration::from_secs(120),
            || {
                let received = received.lock().unwrap();
                committed.iter().all(|(p, _)| received.contains_key(p))
            },
        )
        .await;
        let received = received.lock().unwrap();
        let mut commit_ms: Vec<f64> = committed
            .iter()
            .map(|(p, at)| received[p].at.saturating_duration_since(*at).as_secs_f64() * 1000.0)
            .collect();
        let mut recorded_ms: Vec<f64> = committed
            .iter()
            .map(|(p, _)| received[p].since_recorded_ms)
            .collect();
        let commit_cells = latency_cells(&mut commit_ms, write_secs);
        recorded_ms.sort_by(f64::total_cmp);
        println!(
            "| {rate} | {writer_count} | {while_label} | {commit_cells} | {:.2} | {:.2} |",
            quantile(&recorded_ms, 0.50),
            quantile(&recorded_ms, 0.99),
        );
    }

    relay.stop(Duration::from_secs(10)).await;
    subscriber.abort();
    let _ = js.delete_stream(&config.stream).await;
    database.drop_database().await;
}
