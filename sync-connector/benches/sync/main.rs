//! The sync connector against the 1NCE simulator with its rate limit on (10 requests/s on
//! `/v1/sims…`) and the connector's default budget (9 calls/s), for each fleet size of
//! `BENCH_SIMS` (default `10000,100000`). Run: `cargo bench -p sync-connector --bench sync`.
//!
//! Per size, on a fresh database (dropped at the end) and a JetStream stream of its own:
//! 1. the first list sweep, which registers every SIM;
//! 2. the per-SIM refresh of the registered SIMs for `BENCH_DETAIL_SECS` (default 150; 0 = to
//!    the end): at 5 calls per SIM and 9 calls/s the whole phase takes hours, so the bench
//!    measures its rate and extrapolates the total;
//! 3. a second, idle list sweep (nothing changed at the provider), which must issue nothing;
//! 4. the connector's real loops (`Connector::spawn`) for `BENCH_FRESHNESS_SECS` (default 300,
//!    one `SYNC_POLL_INTERVAL_SECS`, so the window holds exactly one list sweep), while
//!    `BENCH_ACTIVE_PERCENT` (default 4) % of the SIMs use data per 300 s (the simulator's
//!    `add_usage`, so their list quota moves): the change-driven refreshes they cause, the
//!    safety net's share, and the age of the oldest usage (`sync_sims.usage_as_of`: the start
//!    of the SIM's last usage call).
//!
//! `BENCH_FIRST_REFRESH` (default `usage`) is the connector's `SYNC_FIRST_REFRESH`: what the
//! first per-SIM phase calls per new SIM; `BENCH_USAGE_INTERVAL_SECS` (default 3600) its
//! `SYNC_USAGE_INTERVAL_SECS`: set it below the fleet's round time to measure the usage
//! round's capacity (the round then runs without pause).
//!
//! `BENCH_CYCLE=1` measures the full polled cycle through the connector's loops instead
//! (`cycle.rs`).
//!
//! Set `RUST_LOG` (e.g. `warn`) to see the connector's logs.

mod cycle;
mod report;

use std::time::{Duration, Instant};

use chrono::Utc;
use once_client::Priority;
use once_simulator::{CallStats, RunningSimulator, Simulator, SimulatorConfig};
use sqlx::PgPool;
use sync_connector::{Config, Connector};
use testkit::bench::{env_or, BenchDatabase};
use tokio::sync::watch;

const NATS_URL: &str = "nats://127.0.0.1:4222";
const SIMULATOR_RATE_LIMIT: u32 = 10;
const POLL_INTERVAL_SECS: u64 = 300;
/// SIMs per `refresh_due` call in the bounded per-SIM phase, so the window is kept to within
/// one batch (20 SIMs ≈ 11 s at 9 calls/s).
const DETAIL_BATCH: i64 = 20;

struct Settings {
    sizes: Vec<usize>,
    detail_window: Option<Duration>,
    freshness_window: Duration,
    first_refresh: String,
    active_percent: f64,
    usage_interval: String,
}

impl Settings {
    fn from_env() -> Self {
        let sizes = std::env::var("BENCH_SIMS")
            .unwrap_or_else(|_| "10000,100000".into())
            .split(',')
            .map(|s| s.trim().parse().expect("BENCH_SIMS: comma-separated SIM counts"))
            .collect();
        let detail: u64 = env_or("BENCH_DETAIL_SECS", 150);
        Self {
            sizes,
            detail_window: (detail > 0).then(|| Duration::from_secs(detail)),
            freshness_window: Duration::from_secs(env_or("BENCH_FRESHNESS_SECS", POLL_INTERVAL_SECS).max(1)),
            first_refresh: std::env::var("BENCH_FIRST_REFRESH").unwrap_or_else(|_| "usage".into()),
            active_percent: env_or("BENCH_ACTIVE_PERCENT", 4.0),
            usage_interval: std::env::var("BENCH_USAGE_INTERVAL_SECS").unwrap_or_else(|_| "3600".into()),
        }
    }
}

/// What the simulator counted during one phase.
struct Calls {
    sims: u64,
    list: u64,
    usage: u64,
    token: u64,
    max_in_one_second: u64,
    rate_limited: u64,
}

impl Calls {
    fn of(stats: &CallStats) -> Self {
        Self {
            sims: stats.sims_calls,
            list: stats.count("GET", "/v1/sims"),
            usage: stats.count("GET", "/v1/sims/{iccid}/usage"),
            token: stats.token_calls(),
            max_in_one_second: stats.max_sims_calls_in_one_second,
            rate_limited: stats.rate_limited,
        }
    }

    /// What was counted between two snapshots (`max_in_one_second`: the later one's, over the
    /// whole run).
    fn between(before: &CallStats, after: &CallStats) -> Self {
        let (a, b) = (Self::of(before), Self::of(after));
        Self {
            sims: b.sims - a.sims,
            list: b.list - a.list,
            usage: b.usage - a.usage,
            token: b.token - a.token,
            max_in_one_second: b.max_in_one_second,
            rate_limited: b.rate_limited - a.rate_limited,
        }
    }

    fn per_sim(&self) -> u64 {
        self.sims - self.list
    }
}

struct Sweep {
    elapsed: Duration,
    calls: Calls,
    pages: u32,
    sims_new: u64,
    sims_changed: u64,
    events: i64,
}

struct Detail {
    elapsed: Duration,
    calls: Calls,
    sims: u64,
    events: i64,
    finished: bool,
}

struct Freshness {
    elapsed: Duration,
    calls: Calls,
    sims_refreshed: i64,
    events: i64,
    oldest_refresh_age: Option<Duration>,
    never_refreshed: i64,
    /// The oldest `usage_as_of` at the end (None: some SIM never had a usage call).
    oldest_usage_age: Option<Duration>,
    /// SIMs the activity made use data during the window.
    activity: u64,
}

struct Outcome {
    sims: usize,
    first: Sweep,
    detail: Detail,
    idle: Sweep,
    freshness: Freshness,
    load: [String; 2],
}

#[tokio::main]
async fn main() {
    if std::env::var_os("RUST_LOG").is_some() {
        platform::telemetry::init_tracing("sync-bench", platform::config::LogFormat::Pretty);
    }
    if let Some(cycle) = cycle::CycleSettings::from_env() {
        cycle::run(&cycle).await;
        return;
    }
    let settings = Settings::from_env();
    let mut outcomes = Vec::new();
    for &sims in &settings.sizes {
        eprintln!("== {sims} SIMs");
        outcomes.push(bench(&settings, sims).await);
    }
    report::print(&settings, &outcomes);
}

async fn bench(settings: &Settings, sims: usize) -> Outcome {
    let load_before = load_average();
    let database = BenchDatabase::create("sync", 10).await;
    let (url, pool) = (database.url.clone(), database.pool.clone());

    let started = Instant::now();
    let simulator = Simulator::spawn(SimulatorConfig {
        sims,
        seed: 7,
        // Nothing changes by itself, so the idle sweep has nothing to find.
        autonomous: false,
        sims_rate_limit_per_sec: SIMULATOR_RATE_LIMIT,
        ..SimulatorConfig::default()
    })
    .await
    .expect("simulator starts");
    eprintln!(
        "simulator with {sims} SIMs up in {:.1} s",
        started.elapsed().as_secs_f64()
    );

    let BenchStream {
        nats,
        jetstream,
        id,
        stream,
        prefix,
    } = BenchStream::create("BENCH_SYNC", "bs").await;
    let config = connector_config(&url, &simulator, &stream, &prefix, &id, settings);
    assert_eq!(config.provider.requests_per_second, 9, "the default budget");
    let connector = Connector::new(config, pool.clone(), nats.clone())
        .await
        .expect("connector builds");

    let first = sweep(&connector, &simulator, &pool).await;
    assert!(
        first.sims_new as usize == sims,
        "the first sweep registers every SIM"
    );
    eprintln!(
        "first list sweep: {:.1} s, {} list calls",
        first.elapsed.as_secs_f64(),
        first.calls.list
    );
    let detail = detail_phase(&connector, &simulator, &pool, settings.detail_window).await;
    eprintln!(
        "per-SIM refresh: {} SIMs in {:.1} s, {} calls",
        detail.sims,
        detail.elapsed.as_secs_f64(),
        detail.calls.sims
    );
    let idle = sweep(&connector, &simulator, &pool).await;
    assert_eq!(
        (idle.sims_new, idle.sims_changed, idle.events),
        (0, 0, 0),
        "an idle sweep issues nothing"
    );
    eprintln!("idle list sweep: {:.1} s", idle.elapsed.as_secs_f64());
    let freshness = freshness_window(
        &connector,
        &simulator,
        &pool,
        settings.freshness_window,
        settings.active_percent,
    )
    .await;
    eprintln!(
        "freshness window: {} SIMs refreshed in {:.0} s",
        freshness.sims_refreshed,
        freshness.elapsed.as_secs_f64()
    );

    drop(connector);
    drop(simulator);
    let _ = jetstream.delete_stream(&stream).await;
    database.drop_database().await;
    Outcome {
        sims,
        first,
        detail,
        idle,
        freshness,
        load: [load_before, load_average()],
    }
}

/// Activity: every 30 s (the tick), a tenth of the SIMs that use data per 300 s use 250 kB,
/// spread over the fleet (`add_usage`, which moves no list field below a level crossing).
struct Activity<'a> {
    simulator: &'a once_simulator::Simulator,
    iccids: Vec<String>,
    per_tick: usize,
    next: usize,
    /// SIMs made to use data so far.
    sims: u64,
}

impl<'a> Activity<'a> {
    fn new(simulator: &'a once_simulator::Simulator, active_percent: f64) -> Self {
        let iccids = simulator.iccids();
        let per_tick = ((iccids.len() as f64 * active_percent / 100.0) / 10.0).round() as usize;
        Self {
            simulator,
            iccids,
            per_tick,
            next: 0,
            sims: 0,
        }
    }

    fn tick(&mut self) {
        for _ in 0..self.per_tick {
            let iccid = &self.iccids[(self.next * 7919) % self.iccids.len()];
            self.simulator
                .add_usage(iccid, Utc::now().date_naive(), 250_000, 0, 0);
            self.next += 1;
            self.sims += 1;
        }
    }
}

/// A JetStream stream and subject prefix of the bench's own.
struct BenchStream {
    nats: async_nats::Client,
    jetstream: async_nats::jetstream::Context,
    id: String,
    stream: String,
    prefix: String,
}

impl BenchStream {
    async fn create(stream_prefix: &str, subject_prefix: &str) -> Self {
        let nats = async_nats::connect(NATS_URL)
            .await
            .expect("NATS at 127.0.0.1:4222");
        let jetstream = async_nats::jetstream::new(nats.clone());
        let id = uuid::Uuid::new_v4().simple().to_string();
        let stream = format!("{stream_prefix}_{id}");
        let prefix = format!("{subject_prefix}{id}");
        jetstream
            .create_stream(async_nats::jetstream::stream::Config {
                name: stream.clone(),
                subjects: vec![format!("{prefix}.>")],
                ..Default::default()
            })
            .await
            .expect("a JetStream stream for the bench");
        Self {
            nats,
            jetstream,
            id,
            stream,
            prefix,
        }
    }
}

fn connector_config(
    url: &str,
    simulator: &RunningSimulator,
    stream: &str,
    prefix: &str,
    id: &str,
    settings: &Settings,
) -> Config {
    let base_url = simulator.base_url();
    let consumer_prefix = format!("sync-bench-{id}");
    let poll_interval = POLL_INTERVAL_SECS.to_string();
    // Everything else, the call budget included, keeps the connector's defaults.
    let vars = [
        ("DATABASE_URL", url),
        ("NATS_URL", NATS_URL),
        ("ONCE_API_URL", base_url.as_str()),
        ("NATS_STREAM", stream),
        ("NATS_SUBJECT_PREFIX", prefix),
        ("SYNC_CONSUMER_PREFIX", consumer_prefix.as_str()),
        ("SYNC_POLL_INTERVAL_SECS", poll_interval.as_str()),
        ("SYNC_FIRST_REFRESH", settings.first_refresh.as_str()),
        ("SYNC_USAGE_INTERVAL_SECS", settings.usage_interval.as_str()),
    ];
    Config::from_lookup(|key| vars.iter().find(|(k, _)| *k == key).map(|(_, v)| v.to_string()))
        .expect("valid connector config")
}

async fn event_count(pool: &PgPool) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM events")
        .fetch_one(pool)
        .await
        .unwrap()
}

async fn sweep(connector: &Connector, simulator: &RunningSimulator, pool: &PgPool) -> Sweep {
    let events = event_count(pool).await;
    simulator.simulator.reset_stats();
    let started = Instant::now();
    let report = connector
        .poller
        .sweep_list()
        .await
        .expect("the list sweep completes");
    let elapsed = started.elapsed();
    assert!(report.complete);
    Sweep {
        elapsed,
        calls: Calls::of(&simulator.simulator.stats()),
        pages: report.pages,
        sims_new: report.sims_new,
        sims_changed: report.sims_changed,
        events: event_count(pool).await - events,
    }
}

/// The per-SIM refresh of the SIMs the first sweep registered, batch by batch, until none is
/// due or the window has passed.
async fn detail_phase(
    connector: &Connector,
    simulator: &RunningSimulator,
    pool: &PgPool,
    window: Option<Duration>,
) -> Detail {
    let events = event_count(pool).await;
    simulator.simulator.reset_stats();
    let started = Instant::now();
    let mut sims = 0;
    let mut finished = false;
    while window.is_none_or(|w| started.elapsed() < w) {
        let report = connector
            .poller
            .refresh_due(DETAIL_BATCH, Priority::ChangedSims)
            .await
            .expect("per-SIM refresh");
        if report.sims_changed == 0 {
            finished = true;
            break;
        }
        sims += report.sims_changed;
    }
    let elapsed = started.elapsed();
    Detail {
        elapsed,
        calls: Calls::of(&simulator.simulator.stats()),
        sims,
        events: event_count(pool).await - events,
        finished,
    }
}

/// The connector's own loops, as deployed, for `window`.
async fn freshness_window(
    connector: &Connector,
    simulator: &RunningSimulator,
    pool: &PgPool,
    window: Duration,
    active_percent: f64,
) -> Freshness {
    let events = event_count(pool).await;
    simulator.simulator.reset_stats();
    let since = Utc::now();
    let started = Instant::now();
    let (stop, shutdown) = watch::channel(false);
    let mut tasks = connector.spawn(shutdown);
    let mut activity = Activity::new(&simulator.simulator, active_percent);
    while started.elapsed() < window {
        activity.tick();
        tokio::time::sleep(Duration::from_secs(30).min(window.saturating_sub(started.elapsed()))).await;
    }
    let _ = stop.send(true);
    let elapsed = started.elapsed();
    let calls = Calls::of(&simulator.simulator.stats());
    // Counted at the stop: the detail loop finishes the batch it is in before it stops, and
    // those SIMs' calls are not in `calls`.
    let sims_refreshed: i64 =
        sqlx::query_scalar("SELECT count(*) FROM sync_sims WHERE detail_synced_at >= $1")
            .bind(since)
            .fetch_one(pool)
            .await
            .unwrap();
    let events = event_count(pool).await - events;
    if tokio::time::timeout(Duration::from_secs(60), async {
        while tasks.join_next().await.is_some() {}
    })
    .await
    .is_err()
    {
        tasks.abort_all();
    }
    let never_refreshed: i64 =
        sqlx::query_scalar("SELECT count(*) FROM sync_sims WHERE detail_synced_at IS NULL")
            .fetch_one(pool)
            .await
            .unwrap();
    let oldest = connector.poller.last_seen().oldest_refresh().await.unwrap();
    let oldest_usage = connector.poller.last_seen().oldest_usage().await.unwrap();
    Freshness {
        elapsed,
        calls,
        sims_refreshed,
        events,
        oldest_refresh_age: oldest
            .filter(|_| never_refreshed == 0)
            .and_then(|at| (Utc::now() - at).to_std().ok()),
        never_refreshed,
        oldest_usage_age: oldest_usage.and_then(|at| (Utc::now() - at).to_std().ok()),
        activity: activity.sims,
    }
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".into())
}
