//! Query latency and throughput over 100,000 SIMs with 32 concurrent clients: one SIM with a
//! cache hit, a cache miss and the cache disabled, and filtered lists; next to a trivial axum
//! handler as the baseline. Run: `cargo bench -p query-service --bench queries`.
//!
//! A fresh database on the server of `BENCH_DATABASE_URL` (default: the local PostgreSQL),
//! dropped at the end. The `sims` read model is filled directly with one
//! `INSERT … SELECT generate_series` (not through events and the projector: the query API
//! only reads the table), then `ANALYZE`d. The real query API runs in this process on a random
//! port with Redis (`BENCH_REDIS_URL`) under a key prefix of the run's own; the keys it warms
//! are deleted at the end. Client and server share the machine's cores.
//!
//! `BENCH_SIMS` (default 100000), `BENCH_SCALE` (default 1: multiplies every operation count).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::routing::get;
use axum::{Json, Router};
use prometheus::IntCounterVec;
use query_service::{App, AppState, Config};
use readmodel::{Cache, SimView, SIM_COLUMNS};
use serde_json::json;
use sqlx::PgPool;
use testkit::bench::{env_or, fill_rows, run_clients, serve, BenchDatabase, Report, SIMS_FILL as FILL};
use testkit::Running;

const CLIENTS: usize = 32;
/// SIMs put into Redis before the cache-hit run; the miss run asks for others.
const WARMED: usize = 10_000;

/// Runs `per_client` requests on each of the [`CLIENTS`]; `op(global index)`.
async fn run<F, Fut>(name: impl Into<String>, per_client: usize, op: F) -> Report
where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    run_clients(name, CLIENTS, per_client, move |client, i| {
        op(client * per_client + i)
    })
    .await
}

fn iccid(n: usize) -> String {
    format!("8988303{n:012}")
}

async fn count(pool: &PgPool, filter: &str) -> i64 {
    sqlx::query_scalar(&format!("SELECT count(*) FROM sims WHERE {filter}"))
        .fetch_one(pool)
        .await
        .unwrap()
}

/// The query API on its real start path and its own port, over `pool`, with `cache`.
async fn query_api(config: &Config, pool: &PgPool, cache: Cache) -> (Running, AppState) {
    let app = App::build_with_cache(config.clone(), pool.clone(), cache)
        .await
        .expect("the query API starts");
    let state = app.state().clone();
    (
        Running::spawn(app.addr(), |shutdown| app.run_until_stopped(shutdown)),
        state,
    )
}

/// GET `url` as the viewer; asserts 200 and returns the `X-Total-Count` (lists) or -1.
async fn get_ok(client: &reqwest::Client, token: &str, url: &str) -> i64 {
    get_list(client, token, url).await.0
}

/// GET `url` as the viewer; asserts 200; `X-Total-Count` (or -1), whether it is exact, and
/// `X-Next-Cursor`.
async fn get_list(client: &reqwest::Client, token: &str, url: &str) -> (i64, bool, Option<String>) {
    let response = client.get(url).bearer_auth(token).send().await.unwrap();
    assert_eq!(response.status(), 200, "GET {url}");
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let total = header("x-total-count").and_then(|v| v.parse().ok()).unwrap_or(-1);
    let exact = header("x-total-count-exact").is_none_or(|v| v == "true");
    let next = header("x-next-cursor");
    response.bytes().await.unwrap();
    (total, exact, next)
}

/// A month of daily usage for every SIM (`sim_usage_daily`), and the fleet's hourly and daily
/// rollups over it, as the projector leaves them on plain Postgres.
const FILL_USAGE: &str = "
INSERT INTO sim_usage_daily (iccid, bucket, data_bytes, sms_mo, sms_mt)
SELECT '8988303' || lpad(g::text, 12, '0'), date_trunc('day', now() AT TIME ZONE 'UTC') AT TIME ZONE 'UTC' - make_interval(days => d),
       1000 + (g * 7 + d * 13) % 100000, (g + d) % 3, (g * d) % 2
FROM generate_series(0, $1::int - 1) AS g, generate_series(1, 30) AS d";
const FILL_FLEET: &str = "
INSERT INTO fleet_usage_daily SELECT bucket, sum(data_bytes), sum(sms_mo), sum(sms_mt) FROM sim_usage_daily GROUP BY bucket;
INSERT INTO fleet_usage_hourly
SELECT d.bucket + make_interval(hours => h), d.data_bytes / 24, d.sms_mo / 24, d.sms_mt / 24
FROM fleet_usage_daily d, generate_series(0, 23) AS h";

#[tokio::main]
async fn main() {
    let sims: usize = env_or("BENCH_SIMS", 100_000);
    let scale: f64 = env_or("BENCH_SCALE", 1.0);
    let per_client = |n: usize| ((n as f64 * scale) as usize).max(1);
    let redis_url = std::env::var("BENCH_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
    let run_id = uuid::Uuid::new_v4().simple().to_string();
    let database = BenchDatabase::create("queries", 20).await;
    let mut config = Config::for_tests(&database.url);
    // The service's production defaults for the pool and the cache's timeout.
    config.db_max_connections = 20;
    config.redis_timeout = Duration::from_millis(100);
    config.common.redis_url = redis_url;
    config.redis_key_prefix = format!("bench-queries-{run_id}");
    let pool = database.pool.clone();

    let started = Instant::now();
    fill_rows(&pool, FILL, sims).await;
    sqlx::query("ANALYZE sims").execute(&pool).await.unwrap();
    println!(
        "fill: {sims} rows into sims (INSERT … SELECT generate_series) + ANALYZE in {:.1} s",
        started.elapsed().as_secs_f64()
    );

    let started = Instant::now();
    fill_rows(&pool, FILL_USAGE, sims).await;
    sqlx::raw_sql(FILL_FLEET).execute(&pool).await.unwrap();
    sqlx::query("ANALYZE sim_usage_daily")
        .execute(&pool)
        .await
        .unwrap();
    println!(
        "fill: 30 days of daily usage for {sims} SIMs (sim_usage_daily) and the fleet's rollups in {:.1} s",
        started.elapsed().as_secs_f64()
    );

    let cache = Cache::connect(config.cache_config()).await;
    let warmed = WARMED.min(sims / 2);
    let warm: Vec<String> = (0..warmed).map(iccid).collect();
    let rows: Vec<SimView> = sqlx::query_as(&format!("SELECT {SIM_COLUMNS} FROM sims WHERE iccid = ANY($1)"))
        .bind(&warm)
        .fetch_all(&pool)
        .await
        .unwrap();
    for row in &rows {
        cache.put_sim(row).await;
    }
    println!("cache: {} SIMs put into Redis\n", rows.len());

    // The service as deployed (its default LIST_TOTAL_CACHE_MS), and one with no cache at all
    // (Redis off, every total counted).
    let mut deployed = config.clone();
    deployed.list_total_cache = Duration::from_secs(1);
    let (served, state) = query_api(&deployed, &pool, cache.clone()).await;
    let (uncached, _) = query_api(&config, &pool, Cache::disabled()).await;
    let (addr, uncached_addr): (SocketAddr, SocketAddr) = (served.addr, uncached.addr);
    let baseline_addr = serve(Router::new().route(
        "/ping",
        get(|| async { Json(json!({"status": "ok", "service": "baseline"})) }),
    ))
    .await;
    let token = Arc::new(testkit::apps::viewer_token(&state));
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(CLIENTS)
        .build()
        .unwrap();

    // The lists' filters, each checked once against SQL before it is timed.
    let fleet = move |i: usize| format!("fleet-{}", i % 20);
    let prefix = move |i: usize| iccid((i * 100) % sims)[..17].to_owned();
    let checks = [
        (
            format!("/sims?status=active&tag={}&page_size=50", fleet(7)),
            count(&pool, "status = 'active' AND tags @> ARRAY['fleet-7']").await,
        ),
        (
            format!("/sims?iccid={}&page_size=50", prefix(123)),
            count(&pool, &format!("iccid LIKE '{}%'", prefix(123))).await,
        ),
        (
            "/sims?label=pump&page_size=50".to_owned(),
            count(&pool, "label ILIKE '%pump%'").await,
        ),
        ("/sims?page_size=50".to_owned(), sims as i64),
    ];
    for (path, expected) in &checks {
        let (total, exact, _) = get_list(&client, &token, &format!("http://{addr}/api/v1{path}")).await;
        if exact {
            assert_eq!(total, *expected, "X-Total-Count of {path}");
            println!("check: GET {path} → X-Total-Count {total}, exact (= SQL count)");
        } else {
            assert!(
                total > config.list_exact_count_limit,
                "an estimate is above the limit"
            );
            println!(
                "check: GET {path} → X-Total-Count {total}, estimated (SQL count {expected}: {:+.1} %)",
                (total as f64 / *expected as f64 - 1.0) * 100.0
            );
        }
    }
    // Keyset pages: the 1000th page of 50 by cursor, walked once to get its cursor.
    let mut cursor = String::new();
    for _ in 0..(sims / 50).min(1000) - 1 {
        let url = format!("http://{addr}/api/v1/sims?page_size=50&after={cursor}");
        cursor = get_list(&client, &token, &url).await.2.expect("a next page");
    }
    let deep_cursor = Arc::new(cursor);
    let deep_page = (sims / 50).min(1000);
    println!();

    /// The path of request `i` of a timed run.
    type PathOf = Arc<dyn Fn(usize) -> String + Send + Sync>;
    let request = |base: SocketAddr, path: PathOf| {
        let client = client.clone();
        let token = token.clone();
        move |i: usize| {
            let client = client.clone();
            let token = token.clone();
            let url = format!("http://{base}{}", path(i));
            async move {
                get_ok(&client, &token, &url).await;
            }
        }
    };

    // Warm-up, not reported: every server's connections (HTTP, Postgres pool, Redis) opened.
    for base in [addr, uncached_addr] {
        run(
            "warm-up",
            20,
            request(
                base,
                Arc::new(move |i| format!("/api/v1/sims/{}", iccid(i % sims))),
            ),
        )
        .await;
    }
    run(
        "warm-up",
        20,
        request(baseline_addr, Arc::new(|_| "/ping".to_owned())),
    )
    .await;

    println!("{CLIENTS} concurrent clients, one request at a time each\n");
    println!("| request | requests | requests/s | p50 ms | p99 ms | max ms |");
    println!("|---|---|---|---|---|---|");

    run(
        "baseline: trivial axum handler, fixed small JSON",
        per_client(500),
        request(baseline_addr, Arc::new(|_| "/ping".to_owned())),
    )
    .await
    .print();

    // One SIM through the cache: every request a hit (the warmed SIMs), then every one a miss
    // (the others), as the service's counter of that outcome tells: the name, the counter, the
    // path of request `i`, and what the counter must show.
    let through_cache: [(&str, &IntCounterVec, PathOf, &str); 2] = [
        (
            "GET /sims/{iccid}, cache hit (Redis)",
            &state.cache_hits,
            Arc::new(move |i| format!("/api/v1/sims/{}", iccid(i % warmed))),
            "every request a cache hit",
        ),
        (
            "GET /sims/{iccid}, cache miss (Redis asked, then Postgres)",
            &state.cache_misses,
            Arc::new(move |i| format!("/api/v1/sims/{}", iccid(warmed + i % (sims - warmed)))),
            "every request a cache miss",
        ),
    ];
    for (name, counter, path, expected) in through_cache {
        let before = counter.with_label_values(&["sim"]).get();
        let mut report = run(name, per_client(300), request(addr, path)).await;
        report.print();
        let counted = counter.with_label_values(&["sim"]).get() - before;
        assert_eq!(counted as usize, report.latencies.len(), "{expected}");
    }

    // The rest of the single-SIM reads and the lists, timed in this order: the name, requests
    // per client, the server, and the path of request `i`.
    let timed: Vec<(String, usize, SocketAddr, PathOf)> = vec![
        (
            "GET /sims/{iccid}, cache disabled (Postgres only)".into(),
            per_client(300),
            uncached_addr,
            Arc::new(move |i| format!("/api/v1/sims/{}", iccid(warmed + i % (sims - warmed)))),
        ),
        (
            "GET /sims?status=active&tag=fleet-N&page_size=50".into(),
            per_client(50),
            addr,
            Arc::new(move |i| format!("/api/v1/sims?status=active&tag={}&page_size=50", fleet(i))),
        ),
        (
            "GET /sims?status=active&tag=fleet-N&page_size=50 (every total counted: LIST_TOTAL_CACHE_MS=0)"
                .into(),
            per_client(50),
            uncached_addr,
            Arc::new(move |i| format!("/api/v1/sims?status=active&tag={}&page_size=50", fleet(i))),
        ),
        (
            "GET /sims?iccid=<17-digit prefix>&page_size=50".into(),
            per_client(200),
            addr,
            Arc::new(move |i| format!("/api/v1/sims?iccid={}&page_size=50", prefix(i))),
        ),
        (
            "GET /sims?label=pump&page_size=50 (substring, ILIKE)".into(),
            per_client(20),
            addr,
            Arc::new(|_| "/api/v1/sims?label=pump&page_size=50".to_owned()),
        ),
        (
            "GET /sims?page_size=50 (no filter)".into(),
            per_client(50),
            addr,
            Arc::new(|_| "/api/v1/sims?page_size=50".to_owned()),
        ),
        (
            "GET /sims?label=pump 4711&page_size=50 (one SIM's label, trigram index)".into(),
            per_client(100),
            addr,
            Arc::new(move |i| format!("/api/v1/sims?label=pump%20{}&page_size=50", (i * 5) % sims)),
        ),
        (
            format!("GET /sims?page={deep_page}&page_size=50 (OFFSET)"),
            per_client(20),
            addr,
            Arc::new(move |_| format!("/api/v1/sims?page={deep_page}&page_size=50")),
        ),
        (
            format!("GET /sims?after=<cursor of page {deep_page}>&page_size=50 (keyset)"),
            per_client(100),
            addr,
            Arc::new(move |_| format!("/api/v1/sims?page_size=50&after={deep_cursor}")),
        ),
    ];
    for (name, requests, base, path) in timed {
        run(name, requests, request(base, path)).await.print();
    }

    for granularity in ["day", "hour"] {
        run(
            format!("GET /fleet/usage?granularity={granularity}, 30 days × {sims} SIMs (fleet rollup)"),
            per_client(100),
            request(
                addr,
                Arc::new(move |_| {
                    let from = (chrono::Utc::now() - chrono::Duration::days(30)).format("%Y-%m-%dT%H:00:00Z");
                    format!("/api/v1/fleet/usage?granularity={granularity}&from={from}")
                }),
            ),
        )
        .await
        .print();
    }
    {
        // What GET /fleet/usage used to do: sum every SIM's daily rows (one client, 5 times).
        let mut latencies = Vec::new();
        let started = Instant::now();
        for _ in 0..5 {
            let t = Instant::now();
            let rows: Vec<(chrono::DateTime<chrono::Utc>, i64)> = sqlx::query_as(
                "SELECT bucket, sum(data_bytes)::bigint FROM sim_usage_daily \
                 WHERE bucket >= now() - interval '30 days' GROUP BY bucket ORDER BY bucket",
            )
            .fetch_all(&pool)
            .await
            .unwrap();
            assert!(rows.len() >= 29);
            latencies.push(t.elapsed());
        }
        Report {
            name: format!("(before: the sum over sim_usage_daily, 30 days × {sims} SIMs, 1 client, SQL)"),
            latencies,
            elapsed: started.elapsed(),
        }
        .print();
    }

    let keys: Vec<String> = warm.iter().map(|i| cache.sim_key(i)).collect();
    for chunk in keys.chunks(1000) {
        cache.invalidate(chunk).await;
    }
    let _ = served.stop().await;
    let _ = uncached.stop().await;
    state.pool.close().await;
    database.drop_database().await;
}
