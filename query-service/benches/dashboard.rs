//! The dashboard's additions over 100,000 SIMs: the quota-state filter on `GET /sims`, the
//! fleet summary as of an instant (`GET /fleet/summary?as_of=`) and the CSV export of the whole
//! fleet. Run: `cargo bench -p query-service --bench dashboard`.
//!
//! A fresh database (`BENCH_DATABASE_URL`, default the local PostgreSQL), dropped at the end.
//! `sims` is filled as the `queries` bench fills it (`testkit::bench::SIMS_FILL`: data quotas
//! used 0–100 %, so about a fifth of the SIMs are at 80 % or more); `fleet_history` with what
//! 30 days of events of those SIMs would have recorded: a registration, an activation, a quota
//! assignment and ten consumption reports each (1.5 million changes), and its hourly sums. The
//! query API runs in this process without Redis. `BENCH_SIMS` (default 100000).

use std::sync::Arc;
use std::time::{Duration, Instant};

use query_service::{App, Config};
use readmodel::Cache;
use testkit::bench::{env_or, fill_rows, run_clients, BenchDatabase, Report, SIMS_FILL};
use testkit::Running;

/// What each SIM's events did to the fleet's figures, spread over the last 30 days.
const FILL_HISTORY: &str = "
INSERT INTO fleet_history (position, metric, recorded_at, delta)
SELECT g * 20 + k, metric, now() - interval '30 days' + make_interval(secs => (g % 86400) + k * 200000), delta
FROM generate_series(0, $1::int - 1) AS g,
     LATERAL (VALUES (0, 'sims.inactive', 1), (1, 'sims.inactive', -1), (2, 'sims.active', 1),
                     (3, 'data.total', 500000000), (4, 'data.remaining', 500000000)) AS fixed(k, metric, delta)
UNION ALL
SELECT g * 20 + 5 + r, 'data.remaining', now() - interval '30 days' + make_interval(secs => (g % 86400) + (5 + r) * 200000), -1000000
FROM generate_series(0, $1::int - 1) AS g, generate_series(0, 9) AS r";
const SUM_HOURS: &str = "
INSERT INTO fleet_history_hourly (bucket, metric, delta)
SELECT date_trunc('hour', recorded_at, 'UTC'), metric, sum(delta) FROM fleet_history GROUP BY 1, 2";

async fn plan(pool: &sqlx::PgPool, query: &str) {
    let lines: Vec<String> = sqlx::query_scalar(&format!("EXPLAIN {query}"))
        .fetch_all(pool)
        .await
        .unwrap();
    println!("EXPLAIN {query}\n    {}", lines.join("\n    "));
}

#[tokio::main]
async fn main() {
    let sims: usize = env_or("BENCH_SIMS", 100_000);
    let database = BenchDatabase::create("dashboard", 10).await;
    let pool = database.pool.clone();
    let started = Instant::now();
    fill_rows(&pool, SIMS_FILL, sims).await;
    fill_rows(&pool, FILL_HISTORY, sims).await;
    sqlx::raw_sql(SUM_HOURS).execute(&pool).await.unwrap();
    sqlx::raw_sql("ANALYZE sims; ANALYZE fleet_history; ANALYZE fleet_history_hourly")
        .execute(&pool)
        .await
        .unwrap();
    let changes: i64 = sqlx::query_scalar("SELECT count(*) FROM fleet_history")
        .fetch_one(&pool)
        .await
        .unwrap();
    println!(
        "fill: {sims} SIMs, {changes} fleet-history changes and their hours in {:.1} s\n",
        started.elapsed().as_secs_f64()
    );
    plan(
        &pool,
        "SELECT iccid FROM sims WHERE quota_state = ANY('{warning}') ORDER BY iccid LIMIT 50",
    )
    .await;
    plan(&pool, "SELECT iccid FROM sims WHERE data_quota_state = ANY('{exhausted}') AND status = 'active' ORDER BY iccid LIMIT 50").await;
    println!();

    let mut config = Config::for_tests(&database.url);
    config.db_max_connections = 10;
    let app = App::build_with_cache(config, pool.clone(), Cache::disabled())
        .await
        .unwrap();
    let state = app.state().clone();
    let running = Running::spawn(app.addr(), |shutdown| app.run_until_stopped(shutdown));
    let base = format!("http://{}/api/v1", running.addr);
    let token = Arc::new(testkit::apps::viewer_token(&state));
    let client = reqwest::Client::new();
    let get = {
        let (client, token) = (client.clone(), token.clone());
        move |url: String| {
            let (client, token) = (client.clone(), token.clone());
            async move {
                let response = client.get(&url).bearer_auth(token.as_str()).send().await.unwrap();
                assert_eq!(response.status(), 200, "GET {url}");
                response.bytes().await.unwrap().len()
            }
        }
    };

    println!("| request | clients | requests | requests/s | p50 ms | p99 ms | max ms |");
    println!("|---|---|---|---|---|---|---|");
    // The name, clients, requests per client and the path of request `i`.
    type PathOf = Arc<dyn Fn(usize) -> String + Send + Sync>;
    let paths: Vec<(&str, usize, usize, PathOf)> = vec![
        (
            "GET /sims?quota_state=warning&page_size=50",
            8,
            50,
            Arc::new(|_| "/sims?quota_state=warning&page_size=50".into()),
        ),
        (
            "GET /sims?quota_state=warning&status=active&sort=-last_seen_at&page_size=50",
            8,
            50,
            Arc::new(|_| "/sims?quota_state=warning&status=active&sort=-last_seen_at&page_size=50".into()),
        ),
        (
            "GET /sims?quota_state=exhausted&quota=data&page_size=50",
            8,
            50,
            Arc::new(|_| "/sims?quota_state=exhausted&quota=data&page_size=50".into()),
        ),
        (
            "GET /fleet/summary?as_of=<an instant in the last 30 days>",
            8,
            50,
            Arc::new(|i| {
                let at = chrono::Utc::now() - chrono::Duration::minutes(((i * 7919) % 43_000) as i64 + 1);
                format!("/fleet/summary?as_of={}", at.format("%Y-%m-%dT%H:%M:%S%.6fZ"))
            }),
        ),
        (
            "GET /fleet/summary (now, from the read models, uncached: 1 client)",
            1,
            1,
            Arc::new(|_| "/fleet/summary".into()),
        ),
    ];
    for (name, clients, per_client, path) in paths {
        let (get, base) = (get.clone(), base.clone());
        let mut report = run_clients(name, clients, per_client, move |client, i| {
            let url = format!("{base}{}", path(client * per_client + i));
            let get = get.clone();
            async move {
                get(url).await;
            }
        })
        .await;
        report.name = format!("{} | {clients}", report.name);
        report.print();
    }

    // The export: one client, the whole fleet, three times.
    let mut latencies = Vec::new();
    let mut bytes = 0;
    let started = Instant::now();
    for _ in 0..3 {
        let t = Instant::now();
        bytes = get(format!("{base}/sims/export")).await;
        latencies.push(t.elapsed());
    }
    Report {
        name: format!(
            "GET /sims/export ({sims} SIMs, {:.1} MB of CSV) | 1",
            bytes as f64 / 1e6
        ),
        latencies,
        elapsed: started.elapsed(),
    }
    .print();

    let _ = running.stop().await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    state.pool.close().await;
    database.drop_database().await;
}
