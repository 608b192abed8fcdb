//! Webhook delivery: how many events a second the command API's dispatcher delivers from a
//! backlog (one subscription, then four at once), and the latency from a command's commit to
//! the receiver getting the event at paced rates. Baselines in the same run: the same receiver
//! sent the same bodies by a plain HTTP client, one after the other (what one subscription's
//! in-order delivery can at best do), and that client's round trip. Run:
//! `cargo bench -p command-service --bench webhooks` (`BENCH_WEBHOOK_SIMS`, default 1,000 SIMs
//! of 5 events; `BENCH_RATES`, default `20,100` events/s; `BENCH_WEBHOOK_POLL_MS`, default
//! 500, the dispatcher's `WEBHOOK_POLL_MS`; `BENCH_WEBHOOK_SECS`, default 5 per rate).
//!
//! The command API runs in this process (its dispatcher, `WEBHOOK_ALLOW_PRIVATE` for the
//! receiver on 127.0.0.1), on a fresh database of the local PostgreSQL, dropped at the end.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::Path;
use axum::http::StatusCode;
use axum::routing::post;
use axum::Router;
use command_service::{App, Config};
use eventstore::{EventStore, GlobalLog, LogCursor, StoredEvent};
use testkit::bench::{
    env_or, fill_and_report, latency_cells, paced_rates, quantile, serve, spawn_paced_relabels, wait_until,
    BenchDatabase,
};
use testkit::Running;
use webhooks::{NewSubscription, Webhooks};

/// What the receiver got: per path (`/hook/{n}`), each event's position and arrival.
#[derive(Default)]
struct Receiver {
    arrivals: Mutex<HashMap<String, Vec<(i64, Instant)>>>,
    total: AtomicUsize,
}

impl Receiver {
    fn count(&self, path: &str) -> usize {
        self.arrivals.lock().unwrap().get(path).map_or(0, Vec::len)
    }

    fn arrivals(&self, path: &str) -> HashMap<i64, Instant> {
        let arrivals = self.arrivals.lock().unwrap();
        arrivals.get(path).into_iter().flatten().copied().collect()
    }
}

async fn receiver() -> (Arc<Receiver>, String) {
    let receiver = Arc::new(Receiver::default());
    let shared = receiver.clone();
    let router = Router::new().route(
        "/hook/{path}",
        post(move |Path(path): Path<String>, body: Bytes| {
            let receiver = shared.clone();
            async move {
                let at = Instant::now();
                // The position only: parsing the whole event is the receiver's business.
                let position = serde_json::from_slice::<serde_json::Value>(&body)
                    .ok()
                    .and_then(|event| event["position"].as_i64())
                    .unwrap_or(-1);
                receiver
                    .arrivals
                    .lock()
                    .unwrap()
                    .entry(path)
                    .or_default()
                    .push((position, at));
                receiver.total.fetch_add(1, Ordering::Relaxed);
                StatusCode::NO_CONTENT
            }
        }),
    );
    let url = format!("http://{}/hook", serve(router).await);
    (receiver, url)
}

async fn command_api(url: &str, poll: Duration) -> Running {
    let mut config = Config::for_tests(url);
    config.db_max_connections = 16;
    config.webhooks.allow_private = true;
    config.webhooks.poll = poll;
    config.rules.engine = false;
    let app = App::build(config).await.expect("the command API starts");
    Running::spawn(app.addr(), |shutdown| app.run_until_stopped(shutdown))
}

async fn subscribe(hooks: &Webhooks, url: String, cursor: LogCursor) -> uuid::Uuid {
    let created = hooks
        .create(NewSubscription {
            url,
            description: Some("bench".into()),
            event_types: vec!["*".into()],
            tag: None,
            secret: webhooks::signature::new_secret(),
            created_by: "bench".into(),
            cursor: (cursor.transaction_id, cursor.position),
        })
        .await
        .expect("a subscription");
    created.id
}

/// Every event of the log, in its order.
async fn whole_log(log: &GlobalLog) -> Vec<StoredEvent> {
    let mut events = Vec::new();
    let mut cursor = LogCursor::START;
    loop {
        let batch = log.read_after(cursor, 1_000).await.unwrap();
        let Some(last) = batch.last() else { break };
        cursor = LogCursor::after(last);
        events.extend(batch);
    }
    events
}

#[tokio::main]
async fn main() {
    let sims: usize = env_or("BENCH_WEBHOOK_SIMS", 1_000);
    let poll = Duration::from_millis(env_or("BENCH_WEBHOOK_POLL_MS", 500));
    let seconds: u64 = env_or("BENCH_WEBHOOK_SECS", 5);
    let db = BenchDatabase::create("webhooks", 16).await;
    let store = EventStore::new(db.pool.clone());
    let log = GlobalLog::new(db.pool.clone());
    let (stored, _) = fill_and_report(&store, &db.pool, sims, 8, true).await;
    let events = whole_log(&log).await;
    assert_eq!(events.len() as i64, stored);
    let (receiver, url) = receiver().await;

    // Baseline: the same bodies to the same receiver, one after the other, by a plain client.
    let client = reqwest::Client::new();
    let bodies: Vec<Vec<u8>> = events.iter().map(|e| serde_json::to_vec(e).unwrap()).collect();
    let started = Instant::now();
    let mut round_trips = Vec::with_capacity(bodies.len());
    for body in &bodies {
        let sent = Instant::now();
        let answer = client
            .post(format!("{url}/baseline"))
            .header("content-type", "application/json")
            .body(body.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), 204);
        round_trips.push(sent.elapsed().as_secs_f64() * 1000.0);
    }
    let baseline = bodies.len() as f64 / started.elapsed().as_secs_f64();
    round_trips.sort_by(f64::total_cmp);
    let direct_p50 = quantile(&round_trips, 0.5);
    println!(
        "baseline: plain client, sequential: {} events, {baseline:.0} events/s; round trip p50 {direct_p50:.2} ms, p95 {:.2} ms, p99 {:.2} ms",
        bodies.len(),
        quantile(&round_trips, 0.95),
        quantile(&round_trips, 0.99),
    );

    let running = command_api(&db.url, poll).await;
    let hooks = Webhooks::new(db.pool.clone());
    println!(
        "\n| phase | deliveries | seconds | deliveries/s | ratio to baseline |\n|---|---:|---:|---:|---:|"
    );
    let mut backlog_subscriptions = Vec::new();
    for count in [1usize, 4] {
        let paths: Vec<String> = (0..count).map(|n| format!("backlog{count}x{n}")).collect();
        let started = Instant::now();
        for path in &paths {
            backlog_subscriptions.push(subscribe(&hooks, format!("{url}/{path}"), LogCursor::START).await);
        }
        let want = events.len();
        wait_until("the backlog delivered", Duration::from_secs(1_800), || {
            paths.iter().all(|path| receiver.count(path) >= want)
        })
        .await;
        let secs = started.elapsed().as_secs_f64();
        let rate = (want * count) as f64 / secs;
        println!(
            "| dispatcher, backlog, {count} subscription(s) | {} | {secs:.2} | {rate:.0} | {:.2} |",
            want * count,
            rate / baseline
        );
        for path in &paths {
            let got: Vec<i64> = receiver.arrivals.lock().unwrap()[path]
                .iter()
                .map(|a| a.0)
                .collect();
            let order: Vec<i64> = events.iter().map(|e| e.position).collect();
            assert_eq!(got, order, "in the log's order, each once");
        }
    }
    for id in backlog_subscriptions {
        hooks.delete(id).await.unwrap();
    }

    // Latency: commit (the command returned) → the receiver has it, at paced rates.
    println!(
        "\nWEBHOOK_POLL_MS {} · direct round trip p50 {direct_p50:.2} ms\n\n| rate asked | events | events/s | p50 ms | p90 ms | p99 ms | max ms | p50 / direct p50 |\n|---:|---:|---:|---:|---:|---:|---:|---:|",
        poll.as_millis()
    );
    for (round, rate) in paced_rates("20,100").into_iter().enumerate() {
        let path = format!("latency{rate}");
        let head = log.cursor_at(log.head().await.unwrap()).await.unwrap();
        subscribe(&hooks, format!("{url}/{path}"), head).await;
        let committed: Arc<Mutex<HashMap<i64, Instant>>> = Arc::default();
        let writers_left = Arc::new(AtomicUsize::new(0));
        let record = committed.clone();
        let left = writers_left.clone();
        let started = Instant::now();
        let tasks = spawn_paced_relabels(
            &store,
            sims,
            rate,
            Duration::from_secs(seconds),
            round,
            move |events, at| {
                let mut committed = record.lock().unwrap();
                for event in events {
                    committed.insert(event.position, at);
                }
            },
            move || {
                left.fetch_add(1, Ordering::Relaxed);
            },
        );
        for task in tasks {
            task.await.unwrap();
        }
        let written_secs = started.elapsed().as_secs_f64();
        let want = committed.lock().unwrap().len();
        wait_until("the paced events delivered", Duration::from_secs(600), || {
            receiver.count(&path) >= want
        })
        .await;
        let arrivals = receiver.arrivals(&path);
        let mut latencies: Vec<f64> = committed
            .lock()
            .unwrap()
            .iter()
            .map(|(position, at)| {
                let arrived = arrivals[position];
                arrived.saturating_duration_since(*at).as_secs_f64() * 1000.0
            })
            .collect();
        let cells = latency_cells(&mut latencies, written_secs);
        let p50 = quantile(&latencies, 0.5);
        println!("| {rate} | {cells} | {:.0} |", p50 / direct_p50);
    }
    println!(
        "\nreceiver got {} requests in all",
        receiver.total.load(Ordering::Relaxed)
    );
    running.stop().await.unwrap();
    db.drop_database().await;
}
