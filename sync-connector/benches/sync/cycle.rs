//! `BENCH_CYCLE=1`: the full polled cycle through the connector's own loops, as deployed
//! (streamer off), from an empty database: the first full sync (every SIM registered and its
//! usage read once) and then the first usage round after it (every SIM's usage read again),
//! sampling the age of the oldest usage all along.
//!
//! `BENCH_RATE_SCALE` (default 1) multiplies the simulator's rate limit and the connector's
//! budget, and divides every period of the connector (poll, usage round, safety net) and of
//! the activity, so the same cycle, call for call, runs that many times faster: at 100,000 SIMs
//! a cycle that takes 7 h at 10 calls/s takes 42 min at 100. The times it prints are scaled
//! back ("at the real rate": measured × scale), which holds while the connector is not what
//! limits the rate: the table shows the budget's use at the scaled rate so that can be checked.
//! `BENCH_CYCLE_SECS` (default 3600) ends the run early; a phase not finished by then is
//! reported with its measured progress, not extrapolated to an end.

use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use once_simulator::{CallStats, Simulator, SimulatorConfig};
use sqlx::PgPool;
use sync_connector::{Config, Connector};
use testkit::bench::{env_or, BenchDatabase};
use tokio::sync::watch;

use super::{load_average, Activity, BenchStream, Calls, NATS_URL, SIMULATOR_RATE_LIMIT};

pub struct CycleSettings {
    sims: usize,
    scale: u32,
    requests_per_second: u32,
    window: Duration,
    active_percent: f64,
}

impl CycleSettings {
    pub fn from_env() -> Option<Self> {
        if std::env::var("BENCH_CYCLE").ok().as_deref() != Some("1") {
            return None;
        }
        Some(Self {
            sims: env_or("BENCH_SIMS", 100_000),
            scale: env_or("BENCH_RATE_SCALE", 1u32).max(1),
            requests_per_second: env_or("BENCH_REQUESTS_PER_SECOND", SIMULATOR_RATE_LIMIT),
            window: Duration::from_secs(env_or("BENCH_CYCLE_SECS", 3600)),
            active_percent: env_or("BENCH_ACTIVE_PERCENT", 4.0),
        })
    }
}

/// One sample of the fleet's state.
#[derive(Default)]
struct Fleet {
    registered: i64,
    usage_read: i64,
    /// SIMs whose usage was read after `since` (the round's progress).
    reread: i64,
    oldest_usage: Option<DateTime<Utc>>,
}

async fn fleet(pool: &PgPool, since: DateTime<Utc>) -> Fleet {
    let (registered, usage_read, reread, oldest_usage): (i64, i64, i64, Option<DateTime<Utc>>) =
        sqlx::query_as(
            "SELECT count(*), count(usage_as_of), count(*) FILTER (WHERE usage_as_of > $1), \
             min(usage_as_of) FROM sync_sims",
        )
        .bind(since)
        .fetch_one(pool)
        .await
        .expect("sample sync_sims");
    Fleet {
        registered,
        usage_read,
        reread,
        oldest_usage,
    }
}

struct Phase {
    name: &'static str,
    /// Wall time from the phase's start to its end (or to the end of the run).
    elapsed: Duration,
    finished: bool,
    /// SIMs done / SIMs to do.
    done: i64,
    of: i64,
    calls: Calls,
}

pub async fn run(settings: &CycleSettings) {
    let scale = settings.scale;
    let load_before = load_average();
    let database = BenchDatabase::create("sync_cycle", 10).await;
    let pool = database.pool.clone();
    let simulator = Simulator::spawn(SimulatorConfig {
        sims: settings.sims,
        seed: 7,
        autonomous: false,
        sims_rate_limit_per_sec: SIMULATOR_RATE_LIMIT * scale,
        ..SimulatorConfig::default()
    })
    .await
    .expect("simulator starts");
    let BenchStream {
        nats,
        jetstream,
        id,
        stream,
        prefix,
    } = BenchStream::create("BENCH_CYCLE", "bc").await;
    let scaled = |secs: u64| (secs / u64::from(scale)).max(1).to_string();
    let (poll, usage, detail) = (scaled(300), scaled(3600), scaled(86_400));
    let rps = (settings.requests_per_second * scale).to_string();
    let base_url = simulator.base_url();
    let consumer_prefix = format!("sync-cycle-{id}");
    // Everything else keeps the connector's defaults (list 25 %, 2 % during the first sync).
    let vars = [
        ("DATABASE_URL", database.url.as_str()),
        ("NATS_URL", NATS_URL),
        ("ONCE_API_URL", base_url.as_str()),
        ("NATS_STREAM", stream.as_str()),
        ("NATS_SUBJECT_PREFIX", prefix.as_str()),
        ("SYNC_CONSUMER_PREFIX", consumer_prefix.as_str()),
        ("SYNC_POLL_INTERVAL_SECS", poll.as_str()),
        ("SYNC_USAGE_INTERVAL_SECS", usage.as_str()),
        ("SYNC_DETAIL_INTERVAL_SECS", detail.as_str()),
        ("SYNC_FIRST_REFRESH", "usage"),
        ("SYNC_REQUESTS_PER_SECOND", rps.as_str()),
    ];
    let config = Config::from_lookup(|key| vars.iter().find(|(k, _)| *k == key).map(|(_, v)| v.to_string()))
        .expect("valid connector config");
    let connector = Connector::new(config, pool.clone(), nats.clone())
        .await
        .expect("connector builds");

    let stats = || simulator.simulator.stats();
    simulator.simulator.reset_stats();
    let (stop, shutdown) = watch::channel(false);
    let mut tasks = connector.spawn(shutdown);
    let started = Instant::now();
    let run_start = Utc::now();
    // Activity as in the loop window of the other mode, its 30 s tick scaled.
    let tick = Duration::from_secs_f64(30.0 / f64::from(scale));
    let mut activity = Activity::new(&simulator.simulator, settings.active_percent);
    let mut next_activity = Instant::now() + tick;

    let mut first: Option<(Duration, CallStats)> = None;
    let mut round_since: Option<DateTime<Utc>> = None;
    let mut round: Option<(Duration, CallStats)> = None;
    let mut oldest_max = Duration::ZERO;
    let mut last_print = Instant::now();
    while started.elapsed() < settings.window && round.is_none() {
        tokio::time::sleep(Duration::from_secs(2)).await;
        if Instant::now() >= next_activity {
            activity.tick();
            next_activity += tick;
        }
        let now = Utc::now();
        let sample = fleet(&pool, round_since.unwrap_or(now)).await;
        let everyone = sample.registered == settings.sims as i64;
        if first.is_none() && everyone && sample.usage_read == sample.registered {
            first = Some((started.elapsed(), stats()));
            round_since = Some(now);
        }
        if let Some(since) = round_since {
            // The oldest usage once the first sync is done (before, unread SIMs have none).
            if let Some(age) = sample.oldest_usage.and_then(|at| (now - at).to_std().ok()) {
                oldest_max = oldest_max.max(age);
            }
            if first.as_ref().is_some_and(|(at, _)| started.elapsed() > *at)
                && sample.reread == sample.registered
                && now > since
            {
                round = Some((started.elapsed(), stats()));
            }
        }
        if last_print.elapsed() >= Duration::from_secs(60) {
            last_print = Instant::now();
            let s = stats();
            eprintln!(
                "{:>6.0} s: {} registered, {} usage read, {} re-read; {} calls ({} list, {} usage), {:.2}/s, {} 429s",
                started.elapsed().as_secs_f64(),
                sample.registered,
                sample.usage_read,
                if round_since.is_some() { sample.reread } else { 0 },
                s.sims_calls,
                s.count("GET", "/v1/sims"),
                s.count("GET", "/v1/sims/{iccid}/usage"),
                s.sims_calls as f64 / started.elapsed().as_secs_f64(),
                s.rate_limited,
            );
        }
    }
    let end = (started.elapsed(), stats());
    let last = fleet(&pool, round_since.unwrap_or(run_start)).await;
    let _ = stop.send(true);
    if tokio::time::timeout(Duration::from_secs(60), async {
        while tasks.join_next().await.is_some() {}
    })
    .await
    .is_err()
    {
        tasks.abort_all();
    }

    let zero = CallStats::default();
    let first_phase = match &first {
        Some((at, calls)) => Phase {
            name: "first full sync (list + one usage call per SIM)",
            elapsed: *at,
            finished: true,
            done: settings.sims as i64,
            of: settings.sims as i64,
            calls: Calls::between(&zero, calls),
        },
        None => Phase {
            name: "first full sync (list + one usage call per SIM)",
            elapsed: end.0,
            finished: false,
            done: last.usage_read,
            of: settings.sims as i64,
            calls: Calls::between(&zero, &end.1),
        },
    };
    let mut phases = vec![first_phase];
    if let Some((first_at, first_calls)) = &first {
        let (at, calls, finished, done) = match &round {
            Some((at, calls)) => (*at, calls, true, settings.sims as i64),
            None => (end.0, &end.1, false, last.reread),
        };
        phases.push(Phase {
            name: "first usage round after it (every SIM's usage read again)",
            elapsed: at - *first_at,
            finished,
            done,
            of: settings.sims as i64,
            calls: Calls::between(first_calls, calls),
        });
    }
    print(
        settings,
        &phases,
        first.is_some().then_some(oldest_max),
        &end.1,
        end.0,
        activity.sims,
        [load_before, load_average()],
    );

    drop(connector);
    drop(simulator);
    let _ = jetstream.delete_stream(&stream).await;
    database.drop_database().await;
}

fn print(
    settings: &CycleSettings,
    phases: &[Phase],
    oldest_max: Option<Duration>,
    all: &CallStats,
    elapsed: Duration,
    activity: u64,
    load: [String; 2],
) {
    let scale = f64::from(settings.scale);
    let real = |d: Duration| d.as_secs_f64() * scale;
    let hours = |secs: f64| format!("{:.2} h", secs / 3600.0);
    println!(
        "\n{} SIMs, rate scale ×{} (simulator {} requests/s, connector budget {} calls/s), window {} s\n",
        settings.sims,
        settings.scale,
        SIMULATOR_RATE_LIMIT * settings.scale,
        settings.requests_per_second * settings.scale,
        settings.window.as_secs()
    );
    println!("| phase | SIMs done | wall time | at the real rate | calls: list / usage / other | calls/s (of the budget) |");
    println!("|---|---|---|---|---|---|");
    for phase in phases {
        let c = &phase.calls;
        let per_second = c.sims as f64 / phase.elapsed.as_secs_f64().max(0.001);
        println!(
            "| {}{} | {} / {} | {:.0} s | {} | {} / {} / {} | {:.2} ({:.0} %) |",
            phase.name,
            if phase.finished {
                ""
            } else {
                " — **not finished**"
            },
            phase.done,
            phase.of,
            phase.elapsed.as_secs_f64(),
            hours(real(phase.elapsed)),
            c.list,
            c.usage,
            c.sims - c.list - c.usage,
            per_second,
            100.0 * per_second / f64::from(settings.requests_per_second * settings.scale),
        );
    }
    match oldest_max {
        Some(oldest) => println!(
            "\n- oldest usage seen after the first sync (max of now − min(usage_as_of)): {:.0} s wall, **{} at the real rate**",
            oldest.as_secs_f64(),
            hours(real(oldest))
        ),
        None => println!("\n- oldest usage: not measured (the first sync did not end in the window)"),
    }
    println!(
        "- whole run: {:.0} s, {} `/v1/sims…` calls, max {} in any second (limit {}), {} 429s; {} SIMs made to use data",
        elapsed.as_secs_f64(),
        all.sims_calls,
        all.max_sims_calls_in_one_second,
        SIMULATOR_RATE_LIMIT * settings.scale,
        all.rate_limited,
        activity
    );
    println!("- load average before → after: {} → {}", load[0], load[1]);
}
