//! Command throughput and latency with 32 concurrent clients, next to a plain INSERT of one
//! event row as the baseline. Run: `cargo bench -p command-service --bench commands`.
//!
//! The command API runs in this process on a random port, against a fresh database on the
//! server of `BENCH_DATABASE_URL` (default: the local PostgreSQL), dropped at the end. Client
//! and server share the machine, so the numbers are a floor for a dedicated server.

use std::net::SocketAddr;
use std::sync::Arc;

use command_service::{App, Config};
use reqwest::Method;
use serde_json::{json, Value};
use testkit::bench::{env_or, run_clients, BenchDatabase, Report};
use testkit::Running;

const CLIENTS: usize = 32;

/// Runs `per_client` operations on each of the [`CLIENTS`]; `op(client, i)`.
async fn run<F, Fut>(name: &str, per_client: usize, op: F) -> Report
where
    F: Fn(usize, usize) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    run_clients(name, CLIENTS, per_client, op).await
}

/// The command API on its real start path, on the bench's database, with a bootstrap admin.
async fn command_api(url: &str, configure: impl FnOnce(&mut Config)) -> Running {
    let mut config = Config::for_tests(url);
    config.addr = "127.0.0.1:0".parse().unwrap();
    // Two APIs and the bench's own pool stay under the server's 100 connections.
    config.db_max_connections = 32;
    config.bootstrap_admin = Some(("bench".into(), "bench-password".into()));
    configure(&mut config);
    let app = App::build(config).await.expect("the command API starts");
    Running::spawn(app.addr(), |shutdown| app.run_until_stopped(shutdown))
}

fn iccid(client: usize, i: usize) -> String {
    format!("898830300{client:03}{i:07}")
}

/// One timed request: where, what, and the status it must answer.
struct Call {
    method: Method,
    url: String,
    body: Value,
    /// `Idempotency-Key`.
    key: Option<String>,
    status: u16,
}

impl Call {
    /// `PATCH /sims/{iccid}` with a new label.
    fn label(addr: SocketAddr, iccid: String, label: String) -> Self {
        Self {
            method: Method::PATCH,
            url: format!("http://{addr}/api/v1/sims/{iccid}"),
            body: json!({ "label": label }),
            key: None,
            status: 200,
        }
    }
}

/// The bench's client, logged in.
#[derive(Clone)]
struct Caller {
    client: reqwest::Client,
    token: Arc<String>,
}

impl Caller {
    async fn send(&self, call: Call) {
        let mut request = self
            .client
            .request(call.method, &call.url)
            .bearer_auth(self.token.as_str())
            .json(&call.body);
        if let Some(key) = &call.key {
            request = request.header("idempotency-key", key);
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), call.status, "{}", call.url);
    }

    /// An operation for [`run`]: the call `make(client, i)` makes.
    fn each(
        &self,
        make: impl Fn(usize, usize) -> Call + Send + Sync + 'static,
    ) -> impl Fn(usize, usize) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>
           + Send
           + Sync
           + 'static {
        let caller = self.clone();
        move |c, i| {
            let caller = caller.clone();
            let call = make(c, i);
            Box::pin(async move { caller.send(call).await })
        }
    }
}

#[tokio::main]
async fn main() {
    let per_client: usize = env_or("BENCH_PER_CLIENT", 150);
    let database = BenchDatabase::create("commands", 32).await;
    let (url, pool) = (database.url.clone(), database.pool.clone());
    let api = command_api(&url, |_| {}).await;
    let addr = api.addr;
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(CLIENTS)
        .build()
        .unwrap();
    let login: Value = client
        .post(format!("http://{addr}/api/v1/auth/login"))
        .json(&json!({"username": "bench", "password": "bench-password"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let caller = Caller {
        client: client.clone(),
        token: Arc::new(login["access_token"].as_str().unwrap().to_owned()),
    };

    println!("{CLIENTS} concurrent clients, {per_client} operations each\n");
    println!("| operation | ops | ops/s | p50 ms | p99 ms | max ms |");
    println!("|---|---|---|---|---|---|");

    let baseline_pool = pool.clone();
    run(
        "baseline: plain INSERT of one event row",
        per_client,
        move |client, i| {
            let pool = baseline_pool.clone();
            async move {
                sqlx::query(
                    "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, \
                 payload, metadata, iccid) VALUES ('baseline', $1, 1, 'Inserted', '1.0', \
                 '{\"iccid\": \"8988303000123456789\", \"label\": \"x\"}', \
                 '{\"actor\": \"bench\", \"command_id\": \"00000000-0000-0000-0000-000000000000\"}', $2)",
                )
                .bind(format!("{client}-{i}"))
                .bind(iccid(client, i))
                .execute(&pool)
                .await
                .unwrap();
            }
        },
    )
    .await
    .print();

    run(
        "POST /sims (register: new aggregate)",
        per_client,
        caller.each(move |c, i| Call {
            method: Method::POST,
            url: format!("http://{addr}/api/v1/sims"),
            body: json!({"iccid": iccid(c, i), "imsi": "901405100000001", "label": "bench"}),
            key: None,
            status: 201,
        }),
    )
    .await
    .print();
    run(
        "PATCH /sims/{iccid} with Idempotency-Key (load + append + key)",
        per_client,
        caller.each(move |c, i| Call {
            method: Method::PATCH,
            url: format!("http://{addr}/api/v1/sims/{}", iccid(c, i)),
            body: json!({"label": format!("renamed {i}")}),
            key: Some(format!("label-{c}-{i}")),
            status: 200,
        }),
    )
    .await
    .print();
    // All 32 clients on the same 32 SIMs' neighbour: every client writes to SIM 0 of its own
    // row, so contention stays per client; this measures a growing history.
    run(
        "PATCH one SIM per client repeatedly (history grows)",
        per_client,
        caller.each(move |c, i| Call::label(addr, iccid(c, 0), format!("hot {i}"))),
    )
    .await
    .print();

    // Snapshots: one SIM per client with a long history (10,000 events, as a SIM gains in a
    // year of hourly usage and connectivity reports) against one with 10, the same command on
    // each; and the long one again with snapshots off (the API of this run with
    // SNAPSHOT_EVERY=0). The histories are inserted in bulk; a first command on each SIM (not
    // timed) loads it in full once and writes its snapshot.
    let unsnapshotted_api = command_api(&url, |config| config.common.snapshot_every = 0).await;
    let unsnapshotted = unsnapshotted_api.addr;
    for (offset, events) in [(800usize, 10usize), (900, 10_000)] {
        for c in 0..CLIENTS {
            let id = iccid(offset + c, 0);
            caller
                .send(Call {
                    method: Method::POST,
                    url: format!("http://{addr}/api/v1/sims"),
                    body: json!({"iccid": id, "imsi": "901405100000001", "label": "long"}),
                    key: None,
                    status: 201,
                })
                .await;
            sqlx::query(
                "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata, iccid) \
                 SELECT 'sim', $1, s, 'SimLabelChanged', '1.0', jsonb_build_object('label', 'label ' || s), \
                   '{\"actor\": \"bench\"}', $1 FROM generate_series(2, $2::int) AS s",
            )
            .bind(&id)
            .bind(events as i64)
            .execute(&pool)
            .await
            .unwrap();
            caller.send(Call::label(addr, id, "warm".into())).await;
        }
    }
    let on = |base: SocketAddr, offset: usize| {
        caller.each(move |c, i| Call::label(base, iccid(offset + c, 0), format!("again {i}")))
    };
    let mut short = run(
        "PATCH a SIM with 10 events (snapshots on)",
        per_client,
        on(addr, 800),
    )
    .await;
    short.print();
    let mut long = run(
        "PATCH a SIM with 10,000 events (snapshots on, every 100)",
        per_client,
        on(addr, 900),
    )
    .await;
    long.print();
    run(
        "PATCH a SIM with 10,000 events (snapshots off)",
        (per_client / 10).max(2),
        on(unsnapshotted, 900),
    )
    .await
    .print();
    println!(
        "\n10,000 events / 10 events, snapshots on: {:.2}× the throughput\n",
        long.ops_per_second() / short.ops_per_second()
    );

    let _ = api.stop().await;
    let _ = unsnapshotted_api.stop().await;
    database.drop_database().await;
}
