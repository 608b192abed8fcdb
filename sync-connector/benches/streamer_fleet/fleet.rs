//! The Data Streamer end to end at fleet size (`BENCH_STREAM_FLEET=100000`): the 1NCE simulator
//! with that many SIMs, autonomous (data sessions, PDP events) on its real-time clock, streaming into the connector's receiver over HTTP
//! while the connector runs its own loops (list sweeps under the provider's rate limit, the
//! applier, the request consumers). Every `BENCH_STREAM_SAMPLE_SECS` (15) for
//! `BENCH_STREAM_FLEET_SECS` (900) it prints how far the platform is behind the simulator's own
//! clock: the oldest usage record delivered and not yet applied, and of the usage records
//! applied since the last sample, the largest delay from the end of the session (the record's
//! time, the simulator's clock) to its settlement. The simulator's clock runs at real time
//! (speed 1) so that its times and the platform's compare directly. Usage of SIMs the platform has not
//! registered yet waits (`pending`) until the first list sweep reaches them; the steady state
//! is after that sweep.

use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use once_simulator::{Simulator, SimulatorConfig, StreamConfig};
use sqlx::PgPool;
use sync_connector::{Config, Connector};
use testkit::bench::{env_or, BenchDatabase};

use super::{AUTH, NATS_URL};

pub async fn run(sims: usize) {
    let window = Duration::from_secs(env_or("BENCH_STREAM_FLEET_SECS", 900));
    let sample = Duration::from_secs(env_or("BENCH_STREAM_SAMPLE_SECS", 15));
    let database = BenchDatabase::create("streamer_fleet", 20).await;
    let nats = async_nats::connect(NATS_URL)
        .await
        .expect("NATS at 127.0.0.1:4222");
    let jetstream = async_nats::jetstream::new(nats.clone());
    let id = uuid::Uuid::new_v4().simple().to_string();
    let (stream, prefix) = (format!("BENCH_FLEET_{id}"), format!("bf{id}"));
    jetstream
        .create_stream(async_nats::jetstream::stream::Config {
            name: stream.clone(),
            subjects: vec![format!("{prefix}.>")],
            ..Default::default()
        })
        .await
        .expect("a JetStream stream for the bench");

    // The receiver's port first: the simulator needs its URL, the connector the simulator's.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let receiver = format!("http://{}/1nce/data-streamer", listener.local_addr().unwrap());
    let started = Instant::now();
    let simulator = Simulator::spawn(SimulatorConfig {
        sims,
        seed: 7,
        autonomous: true,
        clock_speed: 1.0,
        stream: StreamConfig::pushing_to(receiver, AUTH.0, AUTH.1),
        ..SimulatorConfig::default()
    })
    .await
    .expect("simulator starts");
    eprintln!(
        "simulator: {sims} SIMs in {:.1} s, real-time clock, rate limit {} calls/s",
        started.elapsed().as_secs_f64(),
        simulator.simulator.config().sims_rate_limit_per_sec
    );

    let auth = format!("{}:{}", AUTH.0, AUTH.1);
    let base_url = simulator.base_url();
    let consumers = format!("fleet-bench-{id}");
    let vars = [
        ("DATABASE_URL", database.url.as_str()),
        ("NATS_URL", NATS_URL),
        ("ONCE_API_URL", base_url.as_str()),
        ("NATS_STREAM", stream.as_str()),
        ("NATS_SUBJECT_PREFIX", prefix.as_str()),
        ("SYNC_CONSUMER_PREFIX", consumers.as_str()),
        ("STREAMER_BASIC_AUTH", auth.as_str()),
        ("DB_MAX_CONNECTIONS", "20"),
    ];
    let config = Config::from_lookup(|key| vars.iter().find(|(k, _)| *k == key).map(|(_, v)| v.to_string()))
        .expect("valid connector config");
    let connector = Connector::new(config, database.pool.clone(), nats)
        .await
        .expect("connector builds");
    let router = connector.router();
    tokio::spawn(async move {
        platform::http::serve(listener, router, std::future::pending())
            .await
            .unwrap()
    });
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let tasks = connector.spawn(stopped);

    println!("| at s | SIMs registered | records delivered | applied | pending (SIM unknown) | waiting | oldest waiting usage, s | max delay of usage applied since last row, s |");
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|");
    let begun = Instant::now();
    let mut since: DateTime<Utc> = Utc::now();
    let mut steady_max = 0.0_f64;
    let mut steady_from: Option<f64> = None;
    while begun.elapsed() < window {
        tokio::time::sleep(sample).await;
        let now = simulator.simulator.now();
        let sampled_at = Utc::now();
        let report = simulator.simulator.stream_report();
        let delivered = report.usage.delivered_records + report.events.delivered_records;
        let state = inbox(&database.pool, now, since).await;
        let registered: i64 = sqlx::query_scalar("SELECT count(*) FROM sync_sims")
            .fetch_one(&database.pool)
            .await
            .unwrap();
        let at = begun.elapsed().as_secs_f64();
        println!(
            "| {at:.0} | {registered} | {delivered} | {} | {} | {} | {:.1} | {:.1} |",
            state.applied, state.pending, state.waiting, state.oldest_waiting, state.max_delay
        );
        if registered as usize >= sims && state.pending == 0 {
            steady_from.get_or_insert(at);
            steady_max = steady_max.max(state.max_delay).max(state.oldest_waiting);
        }
        since = sampled_at;
    }
    let report = simulator.simulator.stream_report();
    eprintln!(
        "streams: usage {:?} ({} delivered, {} pending at the simulator), events {:?} ({} delivered)",
        report.usage.state,
        report.usage.delivered_records,
        report.usage.pending_records,
        report.events.state,
        report.events.delivered_records
    );
    match steady_from {
        Some(from) => eprintln!(
            "steady state (every SIM registered, nothing pending) from {from:.0} s: the oldest usage not yet in the platform was at most {steady_max:.1} s old (simulator clock)"
        ),
        None => eprintln!("no steady state within the window: the first list sweep had not registered every SIM"),
    }
    eprintln!(
        "load average after: {}",
        std::fs::read_to_string("/proc/loadavg")
            .unwrap_or_default()
            .trim()
    );
    let _ = stop.send(true);
    drop(tasks);
    drop(connector);
    drop(simulator);
    let _ = jetstream.delete_stream(&stream).await;
    database.drop_database().await;
}

struct Inbox {
    applied: i64,
    pending: i64,
    waiting: i64,
    /// Age (at `now`, the simulator's clock) of the oldest usage record received and not
    /// applied; 0 when none waits.
    oldest_waiting: f64,
    /// Of the usage records settled since `since`, the largest delay from the record's time to
    /// its settlement (both read as the simulator's clock: at speed 1 it is the wall clock).
    max_delay: f64,
}

async fn inbox(pool: &PgPool, now: DateTime<Utc>, since: DateTime<Utc>) -> Inbox {
    let (applied, pending, waiting): (i64, i64, i64) = sqlx::query_as(
        "SELECT count(*) FILTER (WHERE state IN ('applied', 'skipped', 'refused')), \
                count(*) FILTER (WHERE state = 'pending'), count(*) FILTER (WHERE state = 'received') \
         FROM streamer_records",
    )
    .fetch_one(pool)
    .await
    .unwrap();
    let oldest: Option<DateTime<Utc>> = sqlx::query_scalar(
        "SELECT min(occurred_at) FROM streamer_records WHERE stream = 'usage' AND state = 'received'",
    )
    .fetch_one(pool)
    .await
    .unwrap();
    let max_delay: Option<f64> = sqlx::query_scalar(
        "SELECT max(extract(epoch FROM settled_at - occurred_at))::float8 FROM streamer_records \
         WHERE stream = 'usage' AND state = 'applied' AND settled_at > $1",
    )
    .bind(since)
    .fetch_one(pool)
    .await
    .unwrap();
    Inbox {
        applied,
        pending,
        waiting,
        oldest_waiting: oldest.map_or(0.0, |at| (now - at).num_milliseconds().max(0) as f64 / 1000.0),
        max_delay: max_delay.unwrap_or(0.0),
    }
}
