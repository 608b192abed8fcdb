//! The Data Streamer receiver's ingest rate: records per second through
//! `POST /1nce/data-streamer` until durably stored (the 200), and records per second the
//! applier turns into events. Run: `cargo bench -p sync-connector --bench streamer`.
//!
//! On a fresh database (dropped at the end) with `BENCH_STREAM_SIMS` SIMs registered (default
//! 2000), `BENCH_STREAM_BATCHES` batches of 3,000 records (default 20; 85 % data usage, 10 %
//! SMS usage, 5 % PDP events) are measured, in this order:
//! 1. baseline, parse only: the batches read and normalised in process (no HTTP, no database);
//! 2. baseline, store only: the parsed batches written to the inbox directly (no HTTP; these
//!    rows are deleted again);
//! 3. the route: `BENCH_STREAM_CLIENTS` (default 4) clients posting the batches over HTTP;
//! 4. the same batches sent again (every record a duplicate);
//! 5. the applier draining the inbox for at most `BENCH_STREAM_APPLY_SECS` (default 120).
//!
//! `BENCH_STREAM_FLEET=100000` runs the end-to-end measurement of `streamer_fleet/fleet.rs` instead.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use sync_connector::streamer::record;
use sync_connector::{Config, Connector};
use testkit::bench::{env_or, fleet_iccid, BenchDatabase};

const NATS_URL: &str = "nats://127.0.0.1:4222";
const BATCH: usize = 3000;
const AUTH: (&str, &str) = ("1nce", "bench-secret");

#[path = "streamer_fleet/fleet.rs"]
mod fleet;

#[tokio::main]
async fn main() {
    // The end-to-end run at fleet size instead (see streamer_fleet/fleet.rs).
    if let Some(sims) = std::env::var("BENCH_STREAM_FLEET")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        return fleet::run(sims).await;
    }
    let sims: usize = env_or("BENCH_STREAM_SIMS", 2000);
    let batches: usize = env_or("BENCH_STREAM_BATCHES", 20);
    let clients: usize = env_or("BENCH_STREAM_CLIENTS", 4);
    let apply_window = Duration::from_secs(env_or("BENCH_STREAM_APPLY_SECS", 120));
    let database = BenchDatabase::create("streamer", 20).await;
    let nats = async_nats::connect(NATS_URL)
        .await
        .expect("NATS at 127.0.0.1:4222");
    let auth = format!("{}:{}", AUTH.0, AUTH.1);
    let vars = [
        ("DATABASE_URL", database.url.as_str()),
        ("NATS_URL", NATS_URL),
        ("STREAMER_BASIC_AUTH", auth.as_str()),
        ("DB_MAX_CONNECTIONS", "20"),
    ];
    let config = Config::from_lookup(|key| vars.iter().find(|(k, _)| *k == key).map(|(_, v)| v.to_string()))
        .expect("valid connector config");
    let connector = Connector::new(config, database.pool.clone(), nats)
        .await
        .expect("connector builds");
    let started = Instant::now();
    testkit::bench::fill(
        &eventstore::EventStore::new(database.pool.clone()),
        sims,
        8,
        false,
    )
    .await;
    eprintln!(
        "{sims} SIMs registered in {:.1} s",
        started.elapsed().as_secs_f64()
    );

    let bodies: Vec<String> = (0..batches).map(|b| body(b, sims)).collect();
    let records = batches * BATCH;
    let mb = bodies.iter().map(String::len).sum::<usize>() as f64 / 1e6;
    println!("| phase | records | seconds | records/s |");
    println!("|---|---:|---:|---:|");

    // 1. Parse only.
    let started = Instant::now();
    let mut parsed = Vec::with_capacity(batches);
    for body in &bodies {
        let items: Vec<&serde_json::value::RawValue> = serde_json::from_str(body).unwrap();
        let batch: Vec<record::Record> = items
            .iter()
            .enumerate()
            .map(|(i, item)| record::parse(i, item).expect("well-formed"))
            .collect();
        parsed.push(batch);
    }
    row("baseline: parse only (in process)", records, started.elapsed());

    // 2. Store only, under other ids (deleted afterwards).
    let inbox = connector.applier.inbox().clone();
    let started = Instant::now();
    for batch in &mut parsed {
        for record in batch.iter_mut() {
            record.id += 1_000_000_000_000;
        }
        inbox.store(batch, &[]).await.expect("stored");
    }
    row(
        "baseline: inbox insert only (no HTTP)",
        records,
        started.elapsed(),
    );
    sqlx::query("DELETE FROM streamer_records WHERE record_id >= 1000000000000")
        .execute(&database.pool)
        .await
        .unwrap();

    // 3. and 4. The route, then the same batches again.
    let url = format!(
        "http://{}/1nce/data-streamer",
        testkit::bench::serve(connector.router()).await
    );
    let bodies = Arc::new(bodies);
    for (phase, expect_new) in [
        ("route: POST → 200 (stored)", true),
        ("route: resent (all duplicates)", false),
    ] {
        let started = Instant::now();
        let latencies = post_all(&url, bodies.clone(), clients, expect_new).await;
        let elapsed = started.elapsed();
        row(phase, records, elapsed);
        eprintln!(
            "  {phase}: {clients} clients, {mb:.1} MB, per batch p50 {:.0} ms, max {:.0} ms",
            latencies[latencies.len() / 2],
            latencies[latencies.len() - 1]
        );
    }

    // 5. The applier.
    let started = Instant::now();
    let mut applied = 0;
    while started.elapsed() < apply_window {
        match connector.applier.apply_waiting().await.expect("applied") {
            0 => break,
            n => applied += n,
        }
    }
    row("applier: records → events", applied, started.elapsed());
    let events: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM events WHERE event_type IN ('UsageRecorded', 'ConnectivityChanged')",
    )
    .fetch_one(&database.pool)
    .await
    .unwrap();
    eprintln!("  {applied} records settled, {events} usage/connectivity events stored");
    eprintln!(
        "load average after: {}",
        std::fs::read_to_string("/proc/loadavg")
            .unwrap_or_default()
            .trim()
    );
    drop(connector);
    database.drop_database().await;
}

fn row(phase: &str, records: usize, elapsed: Duration) {
    let seconds = elapsed.as_secs_f64();
    println!(
        "| {phase} | {records} | {seconds:.2} | {:.0} |",
        records as f64 / seconds
    );
}

/// Posts every body once over `clients` connections; returns the sorted latencies (ms).
async fn post_all(url: &str, bodies: Arc<Vec<String>>, clients: usize, expect_new: bool) -> Vec<f64> {
    let next = Arc::new(AtomicUsize::new(0));
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..clients {
        let (url, bodies, next) = (url.to_owned(), bodies.clone(), next.clone());
        tasks.spawn(async move {
            let http = reqwest::Client::new();
            let mut latencies = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(body) = bodies.get(i) else { break };
                let started = Instant::now();
                let response = http
                    .post(&url)
                    .basic_auth(AUTH.0, Some(AUTH.1))
                    .header("content-type", "application/json")
                    .body(body.clone())
                    .send()
                    .await
                    .expect("answer");
                assert_eq!(response.status(), 200);
                let answer: Value = response.json().await.unwrap();
                let key = if expect_new { "accepted" } else { "duplicates" };
                assert_eq!(answer[key], BATCH, "{answer}");
                latencies.push(started.elapsed().as_secs_f64() * 1000.0);
            }
            latencies
        });
    }
    let mut all = Vec::new();
    while let Some(latencies) = tasks.join_next().await {
        all.extend(latencies.unwrap());
    }
    all.sort_by(f64::total_cmp);
    all
}

/// Batch `b`: 3,000 records with ids of their own, over the fleet's SIMs.
fn body(b: usize, sims: usize) -> String {
    let records: Vec<Value> = (0..BATCH)
        .map(|i| {
            let n = b * BATCH + i;
            let iccid = fleet_iccid(n % sims);
            let id = 800_000_000_000 + n as i64;
            let minute = n % 1440;
            let at = format!("2026-03-01T{:02}:{:02}:00Z", minute / 60, minute % 60);
            let sim = json!({"id": n, "iccid": iccid, "msisdn": "882285105682328", "production_date": null});
            match n % 20 {
                0 => json!({
                    "id": id, "timestamp": at, "event_type": {"id": 3, "description": "Create PDP Context"},
                    "event_severity": {"id": 0, "description": "Info"}, "event_source": {"id": 0, "description": "Network"},
                    "organisation": {"id": 1234, "name": "81000000"}, "alert": false, "description": "", "user": null,
                    "imsi": {"id": 1, "imsi": "901405105682328", "import_date": null}, "sim": sim, "endpoint": null,
                    "detail": {"id": 2, "name": "Telekom", "country": {"id": 74, "name": "Germany", "iso_code": "de"},
                               "pdp_context": {"rat_type": 6, "ue_ip_address": "10.0.0.1", "apn": "iot.1nce.net"}}
                }),
                1 | 2 => usage(id, &at, sim, json!({"id": 6, "description": "SMS"}), json!({"total": 1.0, "tx": 1.0, "rx": 0.0})),
                _ => {
                    let mb: Value = serde_json::from_str(&format!("0.{:06}", 1 + n % 999_999)).unwrap();
                    usage(id, &at, sim, json!({"id": 5, "description": "Data"}), json!({"total": mb, "tx": mb, "rx": 0.0}))
                }
            }
        })
        .collect();
    Value::from(records).to_string()
}

fn usage(id: i64, at: &str, sim: Value, traffic: Value, volume: Value) -> Value {
    json!({
        "id": id, "traffic_type": traffic, "start_timestamp": at, "end_timestamp": at,
        "volume": volume, "cost": 0.001, "currency": {"id": 1, "symbol": "€", "code": "EUR"},
        "imsi": "901405105682328", "imsi_id": 1, "sim": sim,
        "endpoint": {"id": 1, "name": "meter", "ip_address": "10.0.0.1", "imei": null, "tags": null, "balance": null},
        "operator": {"id": 2, "name": "T-Mobile", "mnc": "01", "country": {"id": 74, "mcc": "262", "name": "Germany"}},
        "tariff": {"id": 398, "name": "1NCE Production 01", "ratezone": {"id": 2067, "name": "Rate Zone 2"}},
        "organisation": {"id": 1234, "name": "81000000"}
    })
}
