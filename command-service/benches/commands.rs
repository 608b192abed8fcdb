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
use testkit::http::Exchange;
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
    /// `POST /sims`: registers `iccid` with `label`.
    fn register(addr: SocketAddr, iccid: String, label: &str) -> Self {
        Self {
            method: Method::POST,
            url: format!("http://{addr}/api/v1/sims"),
            body: json!({"iccid": iccid, "imsi": "901405100000001", "label": label}),
            key: None,
            status: 201,
        }
    }

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
    let login = client
        .post(format!("http://{addr}/api/v1/auth/login"))
        .json(&json!({"username": "bench", "password": "bench-password"}))
        .answer()
        .await
        .body;
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

    /// What one timed operation sends: `make(client, i)`.
    type MakeCall = Box<dyn Fn(usize, usize) -> Call + Send + Sync>;
    let timed: [(&str, MakeCall); 3] = [
        (
            "POST /sims (register: new aggregate)",
            Box::new(move |c, i| Call::register(addr, iccid(c, i), "bench")),
        ),
        (
            "PATCH /sims/{iccid} with Idempotency-Key (load + append + key)",
            Box::new(move |c, i| Call {
                key: Some(format!("label-{c}-{i}")),
                ..Call::label(addr, iccid(c, i), format!("renamed {i}"))
            }),
        ),
        // All 32 clients on the same 32 SIMs' neighbour: every client writes to SIM 0 of its
        // own row, so contention stays per client; this measures a growing history.
        (
            "PATCH one SIM per client repeatedly (history grows)",
            Box::new(move |c, i| Call::label(addr, iccid(c, 0), format!("hot {i}"))),
        ),
    ];
    for (name, make) in timed {
        run(name, per_client, caller.each(make)).await.print();
    }

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
            caller.send(Call::register(addr, id.clone(), "long")).await;
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
    // The name, operations per client, the API and the SIMs' offset (800: 10 events, 900:
    // 10,000).
    let histories = [
        ("PATCH a SIM with 10 events (snapshots on)", per_client, addr, 800),
        (
            "PATCH a SIM with 10,000 events (snapshots on, every 100)",
            per_client,
            addr,
            900,
        ),
        (
            "PATCH a SIM with 10,000 events (snapshots off)",
            (per_client / 10).max(2),
            unsnapshotted,
            900,
        ),
    ];
    let mut reports = Vec::new();
    for (name, operations, base, offset) in histories {
        let mut report = run(name, operations, on(base, offset)).await;
        report.print();
        reports.push(report);
    }
    let (short, long) = (&reports[0], &reports[1]);
    println!(
        "\n10,000 events / 10 events, snapshots on: {:.2}× the throughput\n",
        long.ops_per_second() / short.ops_per_second()
    );

    let _ = api.stop().await;
    let _ = unsnapshotted_api.stop().await;
    database.drop_database().await;
}
