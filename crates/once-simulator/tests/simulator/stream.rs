//! The Data Streamer: the simulator pushes its usage and events to a real HTTP receiver started
//! here (axum on 127.0.0.1:0), which checks Basic auth and keeps every POST.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::str::FromStr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::Router;
use base64::Engine;
use chrono::{NaiveDate, NaiveDateTime, TimeZone, Utc};
use once_simulator::{RunningSimulator, SimulatorConfig, StreamConfig, StreamReport, StreamState};
use reqwest::Method;
use rust_decimal::Decimal;
use serde_json::{json, Value};

use crate::common::{start_connected, Api};

const USER: &str = "1nce";
const PASSWORD: &str = "streamer-secret";

#[derive(Clone)]
struct Post {
    at: Instant,
    authorized: bool,
    status: u16,
    records: Vec<Value>,
}

impl Post {
    fn is_usage(&self) -> bool {
        self.records[0].get("traffic_type").is_some()
    }

    fn ids(&self) -> Vec<u64> {
        self.records.iter().map(|r| r["id"].as_u64().unwrap()).collect()
    }
}

struct Receiver {
    url: String,
    posts: Arc<Mutex<Vec<Post>>>,
    /// What an authorized POST is answered.
    answer: Arc<Mutex<u16>>,
    _server: tokio::task::JoinHandle<()>,
}

#[derive(Clone)]
struct ReceiverState {
    posts: Arc<Mutex<Vec<Post>>>,
    answer: Arc<Mutex<u16>>,
}

async fn receive(State(state): State<ReceiverState>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let expected = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{USER}:{PASSWORD}"))
    );
    let authorized = headers.get("authorization").and_then(|v| v.to_str().ok()) == Some(expected.as_str());
    assert_eq!(headers.get("content-type").unwrap(), "application/json");
    let records: Vec<Value> = serde_json::from_slice(&body).expect("a JSON array");
    assert!(!records.is_empty(), "no empty batches");
    let status = if authorized {
        *state.answer.lock().unwrap()
    } else {
        401
    };
    state.posts.lock().unwrap().push(Post {
        at: Instant::now(),
        authorized,
        status,
        records,
    });
    StatusCode::from_u16(status).unwrap()
}

impl Receiver {
    async fn start() -> Self {
        let posts = Arc::new(Mutex::new(Vec::new()));
        let answer = Arc::new(Mutex::new(200));
        let state = ReceiverState {
            posts: posts.clone(),
            answer: answer.clone(),
        };
        let app = Router::new()
            .route("/1nce/data-streamer", post(receive))
            .with_state(state);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/1nce/data-streamer", listener.local_addr().unwrap());
        let server = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        Self {
            url,
            posts,
            answer,
            _server: server,
        }
    }

    fn posts(&self) -> Vec<Post> {
        self.posts.lock().unwrap().clone()
    }

    fn usage_posts(&self) -> Vec<Post> {
        self.posts().into_iter().filter(Post::is_usage).collect()
    }

    fn event_posts(&self) -> Vec<Post> {
        self.posts().into_iter().filter(|p| !p.is_usage()).collect()
    }

    fn answer(&self, status: u16) {
        *self.answer.lock().unwrap() = status;
    }
}

/// A fleet whose clock only moves by `advance`, streaming to `receiver` with `password`,
/// fast intervals and backoff, no duplicates and no reordering unless a test sets them.
fn streaming(receiver: &Receiver, password: &str, sims: usize) -> SimulatorConfig {
    SimulatorConfig {
        sims,
        clock_speed: 0.0,
        sims_rate_limit_per_sec: 0,
        start_time: Some(Utc.with_ymd_and_hms(2026, 3, 10, 9, 30, 0).unwrap()),
        stream: StreamConfig {
            batch_max: 40,
            interval: Duration::from_millis(20),
            duplicate_rate: 0.0,
            reorder_rate: 0.0,
            retries: 3,
            backoff_initial: Duration::from_millis(100),
            backoff_max: Duration::from_millis(1000),
            ..StreamConfig::pushing_to(&receiver.url, USER, password)
        },
        ..Default::default()
    }
}

/// A quiet fleet of 3 ([`streaming`], nothing changes by itself) with `tune` applied to its
/// stream settings, a client, and the ICCID of its first SIM.
async fn quiet_streaming(
    receiver: &Receiver,
    password: &str,
    tune: impl FnOnce(&mut StreamConfig),
) -> (RunningSimulator, Api, String) {
    let mut config = streaming(receiver, password, 3);
    config.autonomous = false;
    tune(&mut config.stream);
    let (running, api) = start_connected(config).await;
    let iccid = running.simulator.iccids()[0].clone();
    (running, api, iccid)
}

/// Usage on the simulated today: `data_bytes` (one data record) and `sms_mo` SMS records.
fn use_today(running: &RunningSimulator, iccid: &str, data_bytes: u64, sms_mo: u64) {
    let today = running.simulator.now().date_naive();
    running.simulator.add_usage(iccid, today, data_bytes, sms_mo, 0);
}

async fn report(api: &Api) -> StreamReport {
    api.get_body("/_admin/stream").await
}

/// Polls the report until `done` holds (10 s at most).
async fn wait_for(api: &Api, what: &str, done: impl Fn(&StreamReport) -> bool) -> StreamReport {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let report = report(api).await;
        if done(&report) {
            return report;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}: {report:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn delivered_all(r: &StreamReport) -> bool {
    r.usage.pending_records == 0 && r.events.pending_records == 0 && r.usage.delivered_records > 0
}

fn decimal(v: &Value) -> Decimal {
    match v {
        Value::String(s) => Decimal::from_str(s).unwrap(),
        Value::Number(n) => {
            let text = n.to_string();
            Decimal::from_str(&text)
                .or_else(|_| Decimal::from_scientific(&text))
                .unwrap()
        }
        other => panic!("not a decimal: {other}"),
    }
}

fn timestamp(v: &Value) -> NaiveDateTime {
    NaiveDateTime::parse_from_str(v.as_str().unwrap(), "%Y-%m-%dT%H:%M:%SZ").unwrap()
}

/// Per (ICCID, date): data total, tx, rx in MB; SMS MO, MT.
type Sums = BTreeMap<(String, NaiveDate), (Decimal, Decimal, Decimal, u64, u64)>;

fn check_usage_record(r: &Value, iccids: &HashSet<String>) {
    assert!(r["id"].as_u64().is_some(), "{r}");
    let (start, end) = (timestamp(&r["start_timestamp"]), timestamp(&r["end_timestamp"]));
    assert!(start <= end && start.date() == end.date(), "{r}");
    let v = &r["volume"];
    assert_eq!(decimal(&v["total"]), decimal(&v["tx"]) + decimal(&v["rx"]), "{r}");
    assert_eq!(decimal(&r["cost"]), decimal(&v["total"]), "{r}");
    assert_eq!(r["currency"]["code"], "EUR");
    assert!(iccids.contains(r["sim"]["iccid"].as_str().unwrap()), "{r}");
    assert_eq!(r["imsi"].as_str().unwrap().len(), 15);
    assert!(r["sim"]["id"].is_u64() && r["imsi_id"].is_u64() && r["endpoint"]["id"].is_u64());
    assert!(r["operator"]["mnc"].is_string() && r["operator"]["country"]["mcc"].is_string());
    assert!(r["organisation"]["name"].is_string() && r["tariff"]["ratezone"]["id"].is_u64());
}

fn sum_usage(posts: &[Post], iccids: &HashSet<String>) -> Sums {
    let mut sums = Sums::new();
    for r in posts.iter().flat_map(|p| &p.records) {
        check_usage_record(r, iccids);
        let key = (
            r["sim"]["iccid"].as_str().unwrap().to_owned(),
            timestamp(&r["start_timestamp"]).date(),
        );
        let sum = sums.entry(key).or_default();
        let v = &r["volume"];
        match (
            r["traffic_type"]["id"].as_u64().unwrap(),
            r["traffic_type"]["description"].as_str(),
        ) {
            (5, Some("Data")) => {
                sum.0 += decimal(&v["total"]);
                sum.1 += decimal(&v["tx"]);
                sum.2 += decimal(&v["rx"]);
            }
            (6, Some("SMS")) => {
                assert_eq!(decimal(&v["total"]), Decimal::ONE, "one record per SMS: {r}");
                // MO counts in tx, MT in rx.
                sum.3 += u64::try_from(decimal(&v["tx"])).unwrap();
                sum.4 += u64::try_from(decimal(&v["rx"])).unwrap();
            }
            other => panic!("unknown traffic type {other:?}: {r}"),
        }
    }
    sums
}

fn check_event_record(e: &Value) {
    assert!(e["id"].as_u64().is_some(), "{e}");
    chrono::DateTime::parse_from_rfc3339(e["timestamp"].as_str().unwrap()).unwrap();
    for field in ["event_type", "event_severity", "event_source"] {
        assert!(
            e[field]["id"].is_u64() && e[field]["description"].is_string(),
            "{e}"
        );
    }
    assert!(e["alert"].is_boolean() && e["description"].is_string() && e["organisation"]["id"].is_u64());
    assert_eq!(e["sim"]["iccid"].as_str().unwrap().len(), 19, "{e}");
}

fn events_of<'a>(events: &'a [Value], iccid: &str, type_id: u64) -> Vec<&'a Value> {
    events
        .iter()
        .filter(|e| e["sim"]["iccid"] == iccid && e["event_type"]["id"] == type_id)
        .collect()
}

#[tokio::test]
async fn streamed_usage_adds_up_to_the_polled_usage_and_events_have_the_documented_shapes() {
    let receiver = Receiver::start().await;
    let (running, api) = start_connected(streaming(&receiver, PASSWORD, 30)).await;
    let sim = &running.simulator;
    let iccids = sim.iccids();
    let today = sim.now().date_naive();
    // What the API and the test controls change, besides two days of autonomous usage.
    sim.add_usage(&iccids[1], today, 1, 2, 1);
    api.send_sms(&iccids[0], &json!({"payload": "hello"})).await;
    sim.set_status(&iccids[2], true);
    sim.set_status(&iccids[2], false);
    sim.set_connectivity(
        &iccids[3],
        None,
        Some("Vodafone".into()),
        Some("Germany".into()),
        Some("4G".into()),
    );
    let topup = api
        .send(Method::POST, &format!("/v1/sims/{}/topup", iccids[4]))
        .await;
    assert_eq!(topup.status(), 201);
    sim.advance(Duration::from_secs(2 * 86_400));
    sim.add_usage(&iccids[1], today, 5, 0, 0);

    let report = wait_for(&api, "everything delivered", delivered_all).await;
    assert!(report.enabled && report.url.as_deref() == Some(receiver.url.as_str()));
    assert_eq!(
        (report.usage.state, report.events.state),
        (StreamState::Active, StreamState::Active)
    );
    assert_eq!(
        report.usage.duplicate_batches + report.events.duplicate_batches,
        0
    );
    let posts = receiver.posts();
    assert!(posts.iter().all(|p| p.authorized && p.status == 200));
    assert!(
        posts.iter().all(|p| p.records.len() <= 40),
        "batches ≤ SIMULATOR_STREAM_BATCH_MAX"
    );
    let usage = receiver.usage_posts();
    assert!(usage.len() > 1, "several batches");
    // One stream's records arrive in order, each once (no duplicates, no reordering here).
    for posts in [&usage, &receiver.event_posts()] {
        let ids: Vec<u64> = posts.iter().flat_map(Post::ids).collect();
        assert!(ids.windows(2).all(|w| w[0] < w[1]), "in order, no duplicate");
    }
    let delivered: u64 = usage.iter().map(|p| p.records.len() as u64).sum();
    assert_eq!(report.usage.delivered_records, delivered);

    // The streamed usage per SIM and day is exactly what the API's daily totals say.
    let known: HashSet<String> = iccids.iter().cloned().collect();
    let sums = sum_usage(&usage, &known);
    let end = sim.now().date_naive();
    let mut compared_days = 0;
    for iccid in &iccids {
        let body = api
            .get_json(&format!("/v1/sims/{iccid}/usage?start_dt={today}&end_dt={end}"))
            .await;
        for day in body["stats"].as_array().unwrap() {
            let date = NaiveDate::parse_from_str(&day["date"].as_str().unwrap()[..10], "%Y-%m-%d").unwrap();
            let streamed = sums.get(&(iccid.clone(), date)).copied().unwrap_or_default();
            let polled = (
                decimal(&day["data"]["volume"]),
                decimal(&day["data"]["volume_tx"]),
                decimal(&day["data"]["volume_rx"]),
                day["sms"]["volume_rx"].as_str().unwrap().parse::<u64>().unwrap(),
                day["sms"]["volume_tx"].as_str().unwrap().parse::<u64>().unwrap(),
            );
            assert_eq!(streamed, polled, "{iccid} on {date}");
            compared_days += usize::from(polled != Default::default());
        }
    }
    assert!(
        compared_days > 10,
        "the fleet used something: {compared_days} SIM-days"
    );
    // The smallest volume is a decimal string (a number would need an exponent).
    let first = &usage
        .iter()
        .flat_map(|p| &p.records)
        .find(|r| r["sim"]["iccid"] == iccids[1].as_str())
        .unwrap();
    assert_eq!(first["volume"]["total"], "0.000001", "{first}");

    let events: Vec<Value> = receiver
        .event_posts()
        .into_iter()
        .flat_map(|p| p.records)
        .collect();
    events.iter().for_each(check_event_record);
    let suspended = events_of(&events, &iccids[2], 9);
    assert_eq!(
        suspended.last().unwrap()["description"],
        "Status of SIM changed from 'Activated' to 'Deactivated'"
    );
    let location = events_of(&events, &iccids[3], 1);
    assert_eq!(location[0]["detail"]["name"], "Vodafone");
    assert!(location[0]["detail"]["mnc"].is_array());
    assert_eq!(
        events_of(&events, &iccids[3], 4)[0]["detail"]["pdp_context"]["rat_type"],
        6
    );
    for type_id in [56, 58] {
        let assigned = events_of(&events, &iccids[4], type_id);
        assert!(
            assigned[0]["detail"].as_str().unwrap().contains("\"volume\""),
            "a JSON-encoded string"
        );
    }
    // Sessions open and close PDP contexts; a closing one carries the session's volume.
    let deleted = events
        .iter()
        .find(|e| e["event_type"]["id"] == 5 && e["detail"]["volume"].is_object())
        .unwrap();
    let context = &deleted["detail"]["pdp_context"]["pdp_context_id"];
    assert!(events
        .iter()
        .any(|e| e["event_type"]["id"] == 3 && &e["detail"]["pdp_context"]["pdp_context_id"] == context));
    let metrics = api.get("/metrics").await.text().await.unwrap();
    assert!(
        metrics.contains(&format!(
            "simulator_stream_records_total{{outcome=\"delivered\",stream=\"usage\"}} {delivered}"
        )),
        "{metrics}"
    );
}

#[tokio::test]
async fn duplicates_resend_a_delivered_batch_with_the_same_ids() {
    let receiver = Receiver::start().await;
    let (running, api, iccid) = quiet_streaming(&receiver, PASSWORD, |s| {
        s.duplicate_rate = 1.0;
        s.batch_max = 5;
    })
    .await;
    use_today(&running, &iccid, 0, 12);
    let report = wait_for(&api, "12 records delivered", |r| r.usage.delivered_records == 12).await;
    let report = wait_for(&api, "the duplicates sent", |r| {
        r.usage.duplicate_batches == report.usage.delivered_batches
    })
    .await;
    assert_eq!(report.usage.duplicate_records, 12);
    let posts = receiver.usage_posts();
    assert_eq!(posts.len(), 6, "3 batches, each twice");
    for pair in posts.chunks(2) {
        assert_eq!(pair[0].ids(), pair[1].ids(), "the same batch, the same ids");
        assert_eq!(pair[0].records, pair[1].records);
    }
    let unique: HashSet<u64> = posts.iter().flat_map(Post::ids).collect();
    assert_eq!(unique.len(), 12);
}

#[tokio::test]
async fn reordering_changes_the_order_but_loses_nothing() {
    let receiver = Receiver::start().await;
    let (running, api, iccid) = quiet_streaming(&receiver, PASSWORD, |s| {
        s.reorder_rate = 1.0;
        s.batch_max = 10;
    })
    .await;
    use_today(&running, &iccid, 0, 60);
    let report = wait_for(&api, "60 records delivered", |r| r.usage.delivered_records == 60).await;
    assert!(report.usage.reordered_batches > 0);
    let posts = receiver.usage_posts();
    assert!(posts.iter().all(|p| p.records.len() <= 10));
    let ids: Vec<u64> = posts.iter().flat_map(Post::ids).collect();
    let mut sorted = ids.clone();
    sorted.sort_unstable();
    sorted.dedup();
    assert_eq!(sorted.len(), 60, "every record once");
    assert_ne!(ids, sorted, "not in id order");
    // Records kept back arrive in a later batch, after records that came after them.
    let batches: Vec<Vec<u64>> = posts.iter().map(Post::ids).collect();
    let crossed = batches
        .windows(2)
        .any(|w| w[1].iter().any(|late| w[0].iter().any(|early| late < early)));
    assert!(crossed, "reordered between batches: {batches:?}");
}

#[tokio::test]
async fn a_failing_receiver_gets_retries_with_growing_delays_then_the_stream_fails_until_reset() {
    let receiver = Receiver::start().await;
    receiver.answer(500);
    let (running, api, iccid) = quiet_streaming(&receiver, PASSWORD, |_| {}).await;
    use_today(&running, &iccid, 4_000, 0);
    let failed = wait_for(&api, "FAILED", |r| r.usage.state == StreamState::Failed).await;
    let report = failed.clone();
    assert_eq!(report.usage.last_status, Some(500));
    assert!(report.usage.last_error.as_deref().unwrap().contains("500"));
    assert_eq!(
        (report.usage.failed_attempts, report.usage.pending_records),
        (4, 1)
    );
    assert!(report.usage.failed_at.is_some());
    let attempts = receiver.usage_posts();
    assert_eq!(attempts.len(), 4, "the first attempt and 3 retries");
    assert!(
        attempts.windows(2).all(|w| w[0].ids() == w[1].ids()),
        "the same batch each time"
    );
    for (i, pair) in attempts.windows(2).enumerate() {
        let delay = pair[1].at - pair[0].at;
        let backoff = Duration::from_millis(100 << i);
        assert!(
            delay + Duration::from_millis(5) >= backoff,
            "retry {}: {delay:?} < {backoff:?}",
            i + 1
        );
    }
    let metrics = api.get("/metrics").await.text().await.unwrap();
    assert!(
        metrics.contains("simulator_stream_failed{stream=\"usage\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("simulator_stream_posts_total{status=\"500\",stream=\"usage\"} 4"),
        "{metrics}"
    );

    // FAILED delivers nothing more, whatever waits.
    use_today(&running, &iccid, 7_000, 0);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(receiver.usage_posts().len(), 4);
    assert_eq!(self::report(&api).await.usage.pending_records, 2);

    // Reset (the portal's restart) brings it back: the failed batch first, then the rest.
    receiver.answer(200);
    let reset: StreamReport = api
        .send(Method::POST, "/_admin/stream/reset")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(reset.usage.state, StreamState::Active);
    wait_for(&api, "delivered after the reset", |r| {
        r.usage.delivered_records == 2
    })
    .await;
    let posts = receiver.usage_posts();
    assert_eq!(posts[4].ids(), attempts[0].ids());
    assert_eq!(posts[4].status, 200);
    let metrics = api.get("/metrics").await.text().await.unwrap();
    assert!(
        metrics.contains("simulator_stream_failed{stream=\"usage\"} 0"),
        "{metrics}"
    );
}

#[tokio::test]
async fn a_wrong_password_is_refused_with_401_and_retried() {
    let receiver = Receiver::start().await;
    let (running, api, iccid) = quiet_streaming(&receiver, "not-the-password", |s| {
        s.retries = 2;
    })
    .await;
    use_today(&running, &iccid, 0, 1);
    let report = wait_for(&api, "FAILED", |r| r.usage.state == StreamState::Failed).await;
    assert_eq!(report.usage.last_status, Some(401));
    assert_eq!(report.usage.delivered_records, 0);
    let posts = receiver.usage_posts();
    assert_eq!(posts.len(), 3, "the first attempt and 2 retries");
    assert!(posts.iter().all(|p| !p.authorized && p.status == 401));
    let counts: HashMap<u64, usize> = posts
        .iter()
        .flat_map(Post::ids)
        .fold(HashMap::new(), |mut m, id| {
            *m.entry(id).or_default() += 1;
            m
        });
    assert_eq!(
        counts.values().copied().collect::<Vec<_>>(),
        vec![3],
        "one record, sent three times"
    );
}

#[tokio::test]
async fn without_a_receiver_url_nothing_streams() {
    let (_running, api) = start_connected(SimulatorConfig {
        sims: 2,
        ..Default::default()
    })
    .await;
    let report = report(&api).await;
    assert!(!report.enabled && report.url.is_none());
    assert_eq!(report.usage, Default::default());
}

#[tokio::test]
async fn a_full_buffer_keeps_the_newest_records_and_counts_what_it_dropped() {
    let receiver = Receiver::start().await;
    let (running, api, iccid) = quiet_streaming(&receiver, PASSWORD, |s| s.buffer_max = 10).await;
    // One change, 25 records: the buffer keeps the newest 10.
    use_today(&running, &iccid, 0, 25);
    let report = wait_for(&api, "10 delivered", |r| r.usage.delivered_records == 10).await;
    assert_eq!(report.usage.dropped_records, 15);
    let ids: Vec<u64> = receiver.usage_posts().iter().flat_map(Post::ids).collect();
    assert_eq!(ids.len(), 10);
    assert_eq!(ids[9] - ids[0], 9, "the last 10 of one change, in order: {ids:?}");
    let metrics = api.get("/metrics").await.text().await.unwrap();
    let dropped = "simulator_stream_records_total{outcome=\"dropped\",stream=\"usage\"} 15";
    assert!(metrics.contains(dropped), "{metrics}");
}

#[tokio::test]
async fn no_receiver_listening_is_a_failed_attempt_without_a_status() {
    // A port that was free a moment ago: nothing answers there.
    let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/1nce/data-streamer", closed.local_addr().unwrap());
    drop(closed);
    let mut config = SimulatorConfig {
        sims: 3,
        autonomous: false,
        ..Default::default()
    };
    config.stream = StreamConfig {
        interval: Duration::from_millis(20),
        retries: 1,
        backoff_initial: Duration::from_millis(50),
        ..StreamConfig::pushing_to(url, USER, PASSWORD)
    };
    let (running, api) = start_connected(config).await;
    let iccid = running.simulator.iccids()[0].clone();
    use_today(&running, &iccid, 1_000, 0);
    let report = wait_for(&api, "FAILED", |r| r.usage.state == StreamState::Failed).await;
    assert_eq!(
        (report.usage.failed_attempts, report.usage.last_status),
        (2, None)
    );
    assert!(report.usage.last_error.unwrap().contains("no answer"));
    let metrics = api.get("/metrics").await.text().await.unwrap();
    assert!(
        metrics.contains("simulator_stream_posts_total{status=\"error\",stream=\"usage\"} 2"),
        "{metrics}"
    );
}
