//! The benches' harness: a database of the run's own, concurrent clients with their latencies,
//! a fleet written through the real event store, paced writers, quantiles and waits.
//!
//! Every bench measures against a baseline in the same run (a trivial handler, a plain
//! INSERT, the unpartitioned projector): the figures are ratios, the machine is shared.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, TimeZone, Utc};
use domain::{Iccid, Imsi, ProviderStatus, Quota, QuotaCommand, QuotaKind, Sim, SimCommand};
use eventstore::{CommandContext, EventMetadata, EventStore, Executed, StoredEvent};
use sqlx::{Connection, PgConnection, PgPool};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// The value of the environment variable `name`, parsed, or `default`.
pub fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The server benches run against: `BENCH_DATABASE_URL` (default: the local PostgreSQL).
pub fn server_url() -> String {
    std::env::var("BENCH_DATABASE_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".into())
}

/// The NATS server benches publish to: `BENCH_NATS_URL` (default: the local server).
pub fn nats_url() -> String {
    std::env::var("BENCH_NATS_URL").unwrap_or_else(|_| "nats://127.0.0.1:4222".into())
}

/// The paced rates (events/s) of the latency runs: `BENCH_RATES`, comma-separated, or `default`.
pub fn paced_rates(default: &str) -> Vec<u64> {
    std::env::var("BENCH_RATES")
        .unwrap_or_else(|_| default.into())
        .split(',')
        .filter_map(|r| r.trim().parse().ok())
        .collect()
}

/// A fresh, migrated database of the run's own; [`BenchDatabase::drop_database`] at the end.
pub struct BenchDatabase {
    pub name: String,
    pub url: String,
    pub pool: PgPool,
}

impl BenchDatabase {
    /// `bench_<kind>_<random>` on [`server_url`], with a pool of `max_connections`.
    pub async fn create(kind: &str, max_connections: u32) -> Self {
        let server = server_url();
        let name = format!(
            "bench_{kind}_{}",
            &uuid::Uuid::new_v4().simple().to_string()[..12]
        );
        let mut admin = PgConnection::connect(&format!("{server}/postgres"))
            .await
            .expect("postgres");
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&mut admin)
            .await
            .expect("a database of the bench's own");
        let url = format!("{server}/{name}");
        let pool = platform::db::connect(&url, max_connections)
            .await
            .expect("the bench database");
        eventstore::migrate(&pool).await.expect("migrations");
        Self { name, url, pool }
    }

    pub async fn drop_database(self) {
        self.pool.close().await;
        let mut admin = PgConnection::connect(&format!("{}/postgres", server_url()))
            .await
            .expect("postgres");
        let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name))
            .execute(&mut admin)
            .await;
    }
}

/// The query benches' `sims` rows (`$1` of them, directly: the query API only reads the
/// table), from `sims_fill.sql`, which the dashboard's budget test runs too. A hash of the row
/// number spreads status (70 % active, 15 % suspended, 12 % inactive, 3 % terminated), region
/// tag (4), fleet tag (20) and label kind (5) independently of each other.
pub const SIMS_FILL: &str = include_str!("sims_fill.sql");

/// Runs a fill statement whose `$1` is the number of rows (SIMs) to make.
pub async fn fill_rows(pool: &PgPool, sql: &str, rows: usize) {
    sqlx::query(sql)
        .bind(rows as i64)
        .execute(pool)
        .await
        .expect("the fill");
}

/// The projectors' read-model tables and their bookkeeping (`projection_versions`,
/// `projection_checkpoints`).
pub const READ_MODEL_TABLES: [&str; 15] = [
    "sims",
    "sim_quotas",
    "sms_messages",
    "sim_status_history",
    "sim_connectivity_history",
    "sim_usage",
    "sim_usage_hourly",
    "sim_usage_daily",
    "fleet_usage_hourly",
    "fleet_usage_daily",
    "fleet_history",
    "fleet_history_hourly",
    "fleet_history_origin",
    "projection_versions",
    "projection_checkpoints",
];

/// Empties every read model and the bookkeeping ([`READ_MODEL_TABLES`]), as before the first
/// event.
pub async fn reset_read_models(pool: &PgPool) {
    sqlx::query(&format!("TRUNCATE {}", READ_MODEL_TABLES.join(", ")))
        .execute(pool)
        .await
        .unwrap();
}

/// The latencies of one timed run, printed as a markdown row:
/// `| name | ops | ops/s | p50 ms | p99 ms | max ms |`.
pub struct Report {
    pub name: String,
    pub latencies: Vec<Duration>,
    pub elapsed: Duration,
}

impl Report {
    pub fn ops_per_second(&self) -> f64 {
        self.latencies.len() as f64 / self.elapsed.as_secs_f64()
    }

    pub fn print(&mut self) {
        self.latencies.sort();
        let pick = |q: f64| {
            self.latencies[((self.latencies.len() as f64 * q) as usize).min(self.latencies.len() - 1)]
        };
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        println!(
            "| {} | {} | {:.0} | {:.2} | {:.2} | {:.2} |",
            self.name,
            self.latencies.len(),
            self.ops_per_second(),
            ms(pick(0.50)),
            ms(pick(0.99)),
            ms(*self.latencies.last().expect("at least one operation")),
        );
    }
}

/// Runs `per_client` operations on each of `clients` concurrent clients, one at a time each;
/// `op(client, i)`.
pub async fn run_clients<F, Fut>(name: impl Into<String>, clients: usize, per_client: usize, op: F) -> Report
where
    F: Fn(usize, usize) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send,
{
    let op = Arc::new(op);
    let started = Instant::now();
    let tasks: Vec<_> = (0..clients)
        .map(|client| {
            let op = op.clone();
            tokio::spawn(async move {
                let mut latencies = Vec::with_capacity(per_client);
                for i in 0..per_client {
                    let t = Instant::now();
                    op(client, i).await;
                    latencies.push(t.elapsed());
                }
                latencies
            })
        })
        .collect();
    let mut latencies = Vec::new();
    for task in tasks {
        latencies.extend(task.await.expect("a client task"));
    }
    Report {
        name: name.into(),
        latencies,
        elapsed: started.elapsed(),
    }
}

/// Serves a router of the bench's own (the trivial-handler baseline) on a free local port.
pub async fn serve(router: axum::Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        platform::http::serve(listener, router, std::future::pending())
            .await
            .unwrap()
    });
    addr
}

/// The `q` quantile of sorted values.
pub fn quantile(sorted: &[f64], q: f64) -> f64 {
    sorted[((sorted.len() as f64 * q) as usize).min(sorted.len() - 1)]
}

/// Polls `done` every 2 ms; panics naming `what` after `limit`.
pub async fn wait_until(what: &str, limit: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// Writers sharing a paced load: enough that each waits on its ticks, not on its commits (a
/// command takes a few milliseconds here), so the rate asked for is the rate written.
pub fn paced_writers(rate: u64) -> usize {
    (rate as usize / 25).clamp(8, 64)
}

/// The bench fleet's SIM `n`.
pub fn fleet_iccid(n: usize) -> String {
    format!("8988303{n:012}")
}

/// 2026-03-01 at `hour`:00 UTC: the bench fleet's day.
pub fn day(hour: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 1, hour, 0, 0).unwrap()
}

/// Stores `command` on SIM `id` as the connector would and returns its events; panics on a
/// refusal (the bench's commands are valid).
pub async fn sim(store: &EventStore, id: &str, command: SimCommand) -> Vec<StoredEvent> {
    let ctx = CommandContext::new(EventMetadata::new("connector:sync"));
    match store.execute::<Sim>(id, id, command, &ctx).await {
        Ok(Executed::New { events, .. }) => events,
        other => panic!("command on {id}: {other:?}"),
    }
}

/// One SIM as the sync connector first sees it: registered, enabled, online, a data quota and
/// (unless `usage` is false) a usage report: 5 events in 5 transactions.
pub async fn onboard(store: &EventStore, n: usize, usage: bool) {
    let id = fleet_iccid(n);
    let parsed = Iccid::parse(&id).unwrap();
    sim(
        store,
        &id,
        SimCommand::Register {
            iccid: parsed.clone(),
            imsi: Imsi::parse(&format!("90140{n:010}")).unwrap(),
            msisdn: None,
            label: Some(format!("meter {n}")),
            tags: vec!["bench".into(), ["north", "south", "east"][n % 3].into()],
            at: day(8),
        },
    )
    .await;
    sim(
        store,
        &id,
        SimCommand::RecordProviderStatus {
            status: ProviderStatus::Enabled,
            at: day(9),
        },
    )
    .await;
    sim(
        store,
        &id,
        SimCommand::RecordConnectivity {
            network: Some("Telekom".into()),
            country: Some("DE".into()),
            rat: Some("LTE-M".into()),
            ip_address: Some(format!("10.0.{}.{}", n / 250 % 250, n % 250)),
            at: day(9),
        },
    )
    .await;
    let quota_id = domain::quota_aggregate_id(&parsed, QuotaKind::Data);
    let assign = QuotaCommand::Assign {
        iccid: parsed,
        kind: QuotaKind::Data,
        total: 500_000_000,
        remaining: 500_000_000,
        expiry_date: Some(day(0) + chrono::Duration::days(365)),
        at: day(10),
    };
    let ctx = CommandContext::new(EventMetadata::new("connector:sync"));
    match store.execute::<Quota>(&quota_id, &id, assign, &ctx).await {
        Ok(Executed::New { .. }) => {}
        other => panic!("quota of {id}: {other:?}"),
    }
    if !usage {
        return;
    }
    sim(
        store,
        &id,
        SimCommand::RecordUsage {
            period_start: day(0),
            period_end: day(0) + chrono::Duration::days(1),
            data_bytes: 1_000 + n as u64,
            sms_mo: 1,
            sms_mt: 0,
        },
    )
    .await;
}

/// Onboards SIMs `0..sims` ([`onboard`]) with `writers` concurrent writers.
pub async fn fill(store: &EventStore, sims: usize, writers: usize, usage: bool) {
    let next = Arc::new(AtomicUsize::new(0));
    let tasks: Vec<_> = (0..writers)
        .map(|_| {
            let store = store.clone();
            let next = next.clone();
            tokio::spawn(async move {
                loop {
                    let n = next.fetch_add(1, Ordering::Relaxed);
                    if n >= sims {
                        return;
                    }
                    onboard(&store, n, usage).await;
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
}

/// [`fill`]s the log with `writers` concurrent writers and prints how fast:
/// `fill: … events (… SIMs) through EventStore::execute, …`. The events stored and the seconds
/// it took.
pub async fn fill_and_report(
    store: &EventStore,
    pool: &PgPool,
    sims: usize,
    writers: usize,
    usage: bool,
) -> (i64, f64) {
    let started = Instant::now();
    fill(store, sims, writers, usage).await;
    let stored: i64 = sqlx::query_scalar("SELECT count(*) FROM events")
        .fetch_one(pool)
        .await
        .unwrap();
    let fill_secs = started.elapsed().as_secs_f64();
    println!(
        "fill: {stored} events ({sims} SIMs) through EventStore::execute, {writers} writers, \
         {fill_secs:.1} s ({:.0} events/s)",
        stored as f64 / fill_secs
    );
    (stored, fill_secs)
}

/// A task of the bench's own (the relay, a projector, a replica) that runs until
/// [`Background::stop`] sends `true` on its shutdown channel.
pub struct Background {
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl Background {
    /// Spawns `run(shutdown)`.
    pub fn spawn<F, Fut>(run: F) -> Self
    where
        F: FnOnce(watch::Receiver<bool>) -> Fut,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let (stop, shutdown) = watch::channel(false);
        let task = tokio::spawn(run(shutdown));
        Self { stop, task }
    }

    /// Asks it to stop and waits for its end, `limit` at the most.
    pub async fn stop(self, limit: Duration) {
        let _ = self.stop.send(true);
        let _ = tokio::time::timeout(limit, self.task).await;
    }
}

/// Resolves once `shutdown` turns `true` (a shutdown future for a [`Background`] task).
pub async fn stopped(mut shutdown: watch::Receiver<bool>) {
    let _ = shutdown.wait_for(|stop| *stop).await;
}

/// The paced load of the latency runs: `rate` label changes a second for `duration`, spread over
/// [`paced_writers`] writers on a tick each. Writers take disjoint SIMs of the fleet `0..sims`,
/// so no two race for one aggregate; labels carry the `round`. After each commit
/// `committed(events, at)` gets the command's events and the instant it returned; `finished()`
/// runs as each writer ends. The writers' tasks, one each.
pub fn spawn_paced_relabels<C, D>(
    store: &EventStore,
    sims: usize,
    rate: u64,
    duration: Duration,
    round: usize,
    committed: C,
    finished: D,
) -> Vec<JoinHandle<()>>
where
    C: Fn(&[StoredEvent], Instant) + Send + Sync + 'static,
    D: Fn() + Send + Sync + 'static,
{
    let writer_count = paced_writers(rate);
    let per_writer = Duration::from_secs_f64(writer_count as f64 / rate as f64);
    let deadline = Instant::now() + duration;
    let (committed, finished) = (Arc::new(committed), Arc::new(finished));
    (0..writer_count)
        .map(|w| {
            let store = store.clone();
            let (committed, finished) = (committed.clone(), finished.clone());
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(per_writer);
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                let mut k = 0usize;
                while Instant::now() < deadline {
                    tick.tick().await;
                    let n = (w + k * writer_count) % sims;
                    k += 1;
                    let id = fleet_iccid(n);
                    let label = Some(Some(format!("meter {n} r{round} k{k}")));
                    let events = sim(&store, &id, SimCommand::UpdateDetails { label, tags: None }).await;
                    committed(&events, Instant::now());
                }
                finished();
            })
        })
        .collect()
}

/// Sorts latencies (ms) measured over `seconds` of writing and formats the markdown cells
/// `events | achieved events/s | p50 | p90 | p99 | max`.
pub fn latency_cells(latencies: &mut [f64], seconds: f64) -> String {
    latencies.sort_by(f64::total_cmp);
    format!(
        "{} | {:.0} | {:.2} | {:.2} | {:.2} | {:.2}",
        latencies.len(),
        latencies.len() as f64 / seconds,
        quantile(latencies, 0.50),
        quantile(latencies, 0.90),
        quantile(latencies, 0.99),
        latencies.last().unwrap(),
    )
}
