//! Bulk jobs: submitting 100,000 ICCIDs (one request, items inserted in batches), reading
//! and cancelling such a job, the 100,000 items as CSV, and the worker's items per second on
//! registered SIMs next to the same commands sent one by one (one client, and 16 concurrent
//! clients) in the same run, with the ratio. Run:
//! `cargo bench -p command-service --bench bulk` (`BENCH_BULK_ITEMS`, default 100,000;
//! `BENCH_BULK_SIMS`, default 5,000).
//!
//! The command API runs in this process (its worker unthrottled: `BULK_ITEMS_PER_SEC`
//! 100,000), on a fresh database of the local PostgreSQL, dropped at the end.

use std::time::{Duration, Instant};

use command_service::{App, Config};
use domain::ids::{Iccid, Imsi};
use domain::sim::SimCommand;
use serde_json::{json, Value};
use testkit::bench::{env_or, fleet_iccid, sim, BenchDatabase};
use testkit::http::Exchange;
use testkit::Running;

async fn command_api(url: &str) -> Running {
    let mut config = Config::for_tests(url);
    config.db_max_connections = 16;
    config.bootstrap_admin = Some(("bench".into(), "bench-password".into()));
    config.bulk.items_per_sec = 100_000;
    config.bulk.poll = Duration::from_millis(50);
    let app = App::build(config).await.expect("the command API starts");
    Running::spawn(app.addr(), |shutdown| app.run_until_stopped(shutdown))
}

struct Api {
    client: reqwest::Client,
    base: String,
    token: String,
}

impl Api {
    fn post(&self, path: &str) -> reqwest::RequestBuilder {
        self.client
            .post(format!("{}{path}", self.base))
            .bearer_auth(&self.token)
    }

    fn get(&self, path: &str) -> reqwest::RequestBuilder {
        self.client
            .get(format!("{}{path}", self.base))
            .bearer_auth(&self.token)
    }

    async fn job(&self, id: &str) -> Value {
        self.get(&format!("/bulk-jobs/{id}")).answer().await.body
    }

    /// Submits `body`; returns the job's id and how long the request took.
    async fn submit(&self, body: &Value) -> (String, Duration) {
        let started = Instant::now();
        let answer = self.post("/bulk-jobs").json(body).answer().await;
        assert_eq!(answer.status, 202, "{}", answer.body);
        (answer.body["id"].as_str().unwrap().to_owned(), started.elapsed())
    }

    /// Waits for the job to finish; how long it took from `since`.
    async fn finished(&self, id: &str, since: Instant) -> (Value, Duration) {
        loop {
            let job = self.job(id).await;
            if !job["finished_at"].is_null() {
                return (job, since.elapsed());
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// `action`'s single-SIM route on each of `iccids` (each request with its own
/// Idempotency-Key), from `clients` concurrent clients; requests per second.
async fn single_commands(api: &Api, action: &str, iccids: &[String], clients: usize) -> f64 {
    let started = Instant::now();
    let per_client = iccids.len().div_ceil(clients);
    let mut tasks = tokio::task::JoinSet::new();
    for share in iccids.chunks(per_client) {
        let (client, base, token) = (api.client.clone(), api.base.clone(), api.token.clone());
        let (share, action) = (share.to_vec(), action.to_owned());
        tasks.spawn(async move {
            for iccid in share {
                let request = match action.as_str() {
                    "add_tags" => client
                        .patch(format!("{base}/sims/{iccid}"))
                        .json(&json!({"tags": ["single"]})),
                    _ => client.post(format!("{base}/sims/{iccid}/activate")),
                };
                let answer = request
                    .bearer_auth(&token)
                    .header("idempotency-key", uuid::Uuid::new_v4().to_string())
                    .answer()
                    .await;
                assert!(answer.status.is_success(), "{}", answer.body);
            }
        });
    }
    while let Some(done) = tasks.join_next().await {
        done.unwrap();
    }
    iccids.len() as f64 / started.elapsed().as_secs_f64()
}

fn ms(d: Duration) -> String {
    format!("{:.0}", d.as_secs_f64() * 1000.0)
}

#[tokio::main]
async fn main() {
    let items: usize = env_or("BENCH_BULK_ITEMS", 100_000);
    let sims: usize = env_or("BENCH_BULK_SIMS", 5_000);
    let database = BenchDatabase::create("bulk", 8).await;
    let running = command_api(&database.url).await;
    let client = reqwest::Client::new();
    let base = format!("http://{}/api/v1", running.addr);
    let login = client
        .post(format!("{base}/auth/login"))
        .json(&json!({"username": "bench", "password": "bench-password"}))
        .answer()
        .await
        .body;
    let api = Api {
        client,
        base,
        token: login["access_token"].as_str().unwrap().to_owned(),
    };

    println!("| measure | value |");
    println!("|---|---|");

    // 100,000 ICCIDs in one request; cancelled at once (they are not registered).
    let iccids: Vec<String> = (0..items).map(|n| fleet_iccid(1_000_000 + n)).collect();
    let body = json!({"action": "add_tags", "iccids": iccids, "params": {"tags": ["bench"]}});
    let bytes = serde_json::to_vec(&body).unwrap().len();
    let (id, took) = api.submit(&body).await;
    println!(
        "| POST /bulk-jobs, {items} ICCIDs ({:.1} MB of JSON) → 202 | {} ms |",
        bytes as f64 / 1e6,
        ms(took)
    );
    let started = Instant::now();
    let job = api.job(&id).await;
    println!(
        "| GET /bulk-jobs/{{id}} of it (total {}) | {} ms |",
        job["total"],
        ms(started.elapsed())
    );
    let started = Instant::now();
    let cancelled = api.post(&format!("/bulk-jobs/{id}/cancel")).answer().await.body;
    println!(
        "| POST …/cancel ({} items stopped) | {} ms |",
        cancelled["cancelled"],
        ms(started.elapsed())
    );
    let started = Instant::now();
    let page = api
        .get(&format!("/bulk-jobs/{id}/items?page=900&page_size=100"))
        .answer()
        .await;
    println!(
        "| GET …/items?page=900&page_size=100 ({} items) | {} ms |",
        page.body.as_array().map_or(0, Vec::len),
        ms(started.elapsed())
    );
    let started = Instant::now();
    let csv = api
        .get(&format!("/bulk-jobs/{id}/items?format=csv"))
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    let lines = csv.iter().filter(|b| **b == b'\n').count();
    println!(
        "| GET …/items?format=csv ({lines} lines, {:.1} MB, streamed) | {} ms |",
        csv.len() as f64 / 1e6,
        ms(started.elapsed())
    );

    // The worker on registered SIMs, and the same commands sent one by one to SIMs of their
    // own (registered alike), in the same run: one client after the other (as the worker runs
    // one item at a time) and 16 concurrent clients. Every single command carries an
    // Idempotency-Key, as each bulk item's command does.
    let single = sims.min(1_000);
    let store = eventstore::EventStore::new(database.pool.clone());
    for n in 0..sims + 2 * single {
        let id = fleet_iccid(n);
        let register = SimCommand::Register {
            iccid: Iccid::parse(&id).unwrap(),
            imsi: Imsi::parse(&format!("90140{n:010}")).unwrap(),
            msisdn: None,
            label: None,
            tags: vec![],
            at: chrono::Utc::now(),
        };
        sim(&store, &id, register).await;
    }
    let fleet: Vec<String> = (0..sims).map(fleet_iccid).collect();
    let sequential: Vec<String> = (sims..sims + single).map(fleet_iccid).collect();
    let concurrent: Vec<String> = (sims + single..sims + 2 * single).map(fleet_iccid).collect();
    for (action, params) in [("add_tags", json!({"tags": ["bulk"]})), ("activate", json!({}))] {
        let started = Instant::now();
        let (id, _) = api
            .submit(&json!({"action": action, "iccids": fleet, "params": params}))
            .await;
        let (job, took) = api.finished(&id, started).await;
        assert_eq!(job["applied"], sims as i64, "{job}");
        let bulk = sims as f64 / took.as_secs_f64();
        println!(
            "| worker: {action} on {sims} SIMs | {bulk:.0} items/s ({} ms) |",
            ms(took)
        );
        let one = single_commands(&api, action, &sequential, 1).await;
        let many = single_commands(&api, action, &concurrent, 16).await;
        println!("| single commands: {action} × {single}, 1 client (sequential) | {one:.0} requests/s |");
        println!("| single commands: {action} × {single}, 16 clients | {many:.0} requests/s |");
        println!(
            "| **{action}: bulk ÷ single** (1 client; 16 clients) | **{:.2}**; **{:.2}** |",
            bulk / one,
            bulk / many
        );
    }
    running.stop().await.unwrap();
    database.drop_database().await;
}
