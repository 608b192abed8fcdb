//! The Data Streamer receiver: batches posted to the connector's route as 1NCE posts them,
//! stored durably, applied once through the domain, whatever is resent, malformed or early.

use std::collections::BTreeMap;

use chrono::{NaiveDate, NaiveTime};
use domain::Sim;
use eventstore::EventStore;
use serde_json::{json, Value};
use sqlx::PgPool;
use sync_connector::Connector;

use crate::common::Harness;

pub const USER: &str = "1nce";
pub const SECRET: &str = "pw-current";
const OLD_SECRET: &str = "pw-previous";
pub const DAY: &str = "2026-01-15";

/// A connector whose receiver is served on a port of its own; the test drives the applier.
pub struct Streamer {
    pub harness: Harness,
    pub connector: Connector,
    pub url: String,
    pub http: reqwest::Client,
}

impl Streamer {
    pub async fn start(pool: PgPool, sims: usize, polled: bool, env: &[(&str, &str)]) -> Self {
        let auth = format!("{USER}:{OLD_SECRET},{USER}:{SECRET}");
        let mut overrides = vec![("STREAMER_BASIC_AUTH", auth.as_str())];
        overrides.extend_from_slice(env);
        let (harness, connector) = if polled {
            Harness::polled(pool, sims, 0, &overrides).await
        } else {
            let harness = Harness::new(pool, sims, 0, &overrides).await;
            let connector = harness.connector().await;
            (harness, connector)
        };
        Self {
            url: receiver_url(&connector).await,
            harness,
            connector,
            http: reqwest::Client::new(),
        }
    }

    pub async fn post_as(&self, body: String, user: &str, password: &str) -> (u16, Value) {
        let response = self
            .http
            .post(&self.url)
            .basic_auth(user, Some(password))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    pub async fn post(&self, records: &[Value]) -> (u16, Value) {
        self.post_as(Value::from(records.to_vec()).to_string(), USER, SECRET)
            .await
    }

    /// Applies until nothing is waiting.
    pub async fn drain(&self) {
        while self.connector.applier.apply_waiting().await.unwrap() > 0 {}
    }

    pub async fn states(&self) -> BTreeMap<String, i64> {
        self.connector
            .applier
            .inbox()
            .counts()
            .await
            .unwrap()
            .into_iter()
            .collect()
    }

    /// Each SIM's usage on the day of the test's records is exactly `expected` bytes (no SMS).
    pub async fn assert_data_bytes(&self, expected: BTreeMap<String, u64>) {
        for (iccid, bytes) in expected {
            let sim = self.sim(&iccid).await;
            let day = sim.usage_for(day_start()).expect("the day's usage");
            assert_eq!((day.data_bytes, day.sms_mo, day.sms_mt), (bytes, 0, 0), "{iccid}");
        }
    }

    pub fn store(&self) -> EventStore {
        EventStore::new(self.harness.pool.clone())
    }

    pub async fn sim(&self, iccid: &str) -> Sim {
        self.store().load::<Sim>(iccid).await.unwrap().state
    }
}

/// The connector's router served on a port of its own: the receiver's URL.
async fn receiver_url(connector: &Connector) -> String {
    format!(
        "http://{}/1nce/data-streamer",
        testkit::bench::serve(connector.router()).await
    )
}

/// A data usage record as 1NCE sends it (every field of the documented example).
pub fn data_record(id: i64, iccid: &str, bytes: u64) -> Value {
    let mb: Value = serde_json::from_str(&format!("{}.{:06}", bytes / 1_000_000, bytes % 1_000_000)).unwrap();
    json!({
        "id": id, "traffic_type": {"id": 5, "description": "Data"},
        "start_timestamp": format!("{DAY}T10:00:00Z"), "end_timestamp": format!("{DAY}T10:15:00Z"),
        "volume": {"total": mb, "tx": mb, "rx": 0.0}, "cost": mb,
        "currency": {"id": 1, "symbol": "€", "code": "EUR"}, "imsi": "901405105682328", "imsi_id": 1234567,
        "sim": {"id": 7, "iccid": iccid, "msisdn": "882285105682328", "production_date": null},
        "endpoint": {"id": 1, "name": iccid, "ip_address": "10.0.0.1", "imei": null, "tags": null, "balance": null},
        "operator": {"id": 2, "name": "T-Mobile", "mnc": "01", "country": {"id": 74, "mcc": "262", "name": "Germany"}},
        "tariff": {"id": 398, "name": "1NCE Production 01", "ratezone": {"id": 2067, "name": "Rate Zone 2 (EU - DE)"}},
        "organisation": {"id": 1234, "name": "81000000"}
    })
}

pub fn event_record(id: i64, iccid: Option<&str>, event_type: i64, at: &str, detail: Value) -> Value {
    json!({
        "id": id, "timestamp": at, "event_type": {"id": event_type, "description": "whatever"},
        "event_severity": {"id": 0, "description": "Info"}, "event_source": {"id": 0, "description": "Network"},
        "organisation": {"id": 1234, "name": "81000000"}, "alert": false, "description": "", "user": null,
        "imsi": null, "endpoint": null,
        "sim": iccid.map(|iccid| json!({"id": 7, "iccid": iccid, "msisdn": null, "production_date": null})),
        "detail": detail
    })
}

/// `n` data records over `iccids`, and the bytes each SIM should end with.
pub fn data_batch(iccids: &[String], n: usize, first_id: i64) -> (Vec<Value>, BTreeMap<String, u64>) {
    let mut expected = BTreeMap::new();
    let records = (0..n)
        .map(|i| {
            let iccid = &iccids[i % iccids.len()];
            let bytes = 1_000 + (i as u64 * 7_919) % 2_500_000;
            *expected.entry(iccid.clone()).or_default() += bytes;
            data_record(first_id + i as i64, iccid, bytes)
        })
        .collect();
    (records, expected)
}

pub fn day_start() -> chrono::DateTime<chrono::Utc> {
    NaiveDate::parse_from_str(DAY, "%Y-%m-%d")
        .unwrap()
        .and_time(NaiveTime::MIN)
        .and_utc()
}

#[sqlx::test(migrator = "eventstore::MIGRATOR")]
async fn a_batch_of_3000_is_applied_once_when_sent_three_times(pool: PgPool) {
    let streamer = Streamer::start(pool, 10, true, &[]).await;
    let iccids = streamer.connector.poller.last_seen().all_iccids().await.unwrap();
    let head = streamer.harness.head().await;
    let (records, expected) = data_batch(&iccids, 3000, 839_610_411_991_272);

    let (status, answer) = streamer.post(&records).await;
    assert_eq!(
        (status, &answer["accepted"], &answer["duplicates"]),
        (200, &json!(3000), &json!(0))
    );
    let (again, resend) = tokio::join!(streamer.post(&records), streamer.post(&records));
    for (status, answer) in [again, resend] {
        assert_eq!(
            (status, &answer["accepted"], &answer["duplicates"]),
            (200, &json!(0), &json!(3000))
        );
    }
    streamer.drain().await;
    // Resent once more after it was applied: still nothing new.
    assert_eq!(streamer.post(&records).await.1["duplicates"], json!(3000));
    streamer.drain().await;

    assert_eq!(
        streamer.states().await,
        BTreeMap::from([("applied".to_owned(), 3000)])
    );
    assert_eq!(
        streamer.harness.events_after(head).await,
        BTreeMap::from([("UsageRecorded".to_owned(), 3000)])
    );
    streamer.assert_data_bytes(expected).await;
    let metrics = streamer.connector.metrics.render();
    assert!(
        metrics.contains("streamer_records_received_total{stream=\"usage\",type=\"data\"} 3000"),
        "{metrics}"
    );
    assert!(
        metrics.contains("streamer_duplicates_total{stream=\"usage\"} 9000"),
        "{metrics}"
    );
    assert!(
        metrics.contains("streamer_records_settled_total{outcome=\"applied\",type=\"data\"} 3000"),
        "{metrics}"
    );
    streamer.harness.cleanup().await;
}

#[sqlx::test(migrator = "eventstore::MIGRATOR")]
async fn a_wrong_secret_is_refused_and_stores_nothing_while_both_rotated_secrets_work(pool: PgPool) {
    let streamer = Streamer::start(pool, 2, true, &[]).await;
    let iccids = streamer.connector.poller.last_seen().all_iccids().await.unwrap();
    let body = Value::from(vec![data_record(1, &iccids[0], 1_000)]).to_string();
    for (user, password) in [(USER, "wrong"), ("other", SECRET), ("", "")] {
        let (status, answer) = streamer.post_as(body.clone(), user, password).await;
        assert_eq!(
            (status, answer["error"]["code"].as_str()),
            (401, Some("UNAUTHENTICATED"))
        );
    }
    let unauthenticated = streamer
        .http
        .post(&streamer.url)
        .body(body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(unauthenticated.status(), 401);
    assert_eq!(
        unauthenticated.headers()["www-authenticate"],
        "Basic realm=\"1nce-data-streamer\""
    );
    assert!(streamer.states().await.is_empty());
    let rejects: i64 = sqlx::query_scalar("SELECT count(*) FROM streamer_rejects")
        .fetch_one(&streamer.harness.pool)
        .await
        .unwrap();
    assert_eq!(rejects, 0);
    assert!(streamer
        .connector
        .metrics
        .render()
        .contains("streamer_receiver_errors_total{status=\"401\"} 4"));

    // Rotation: the previous and the current secret are both accepted.
    assert_eq!(
        streamer.post_as(body.clone(), USER, OLD_SECRET).await.1["accepted"],
        json!(1)
    );
    let second = Value::from(vec![data_record(2, &iccids[0], 1_000)]).to_string();
    assert_eq!(
        streamer.post_as(second, USER, SECRET).await.1["accepted"],
        json!(1)
    );
    // The Basic-auth field may hold the bare base64 (1NCE does not say which it sends).
    use base64::Engine;
    let bare = base64::engine::general_purpose::STANDARD.encode(format!("{USER}:{SECRET}"));
    let third = Value::from(vec![data_record(3, &iccids[0], 1_000)]).to_string();
    let response = streamer
        .http
        .post(&streamer.url)
        .header("authorization", bare)
        .body(third)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    streamer.harness.cleanup().await;
}

#[sqlx::test(migrator = "eventstore::MIGRATOR")]
async fn five_malformed_records_among_100_cost_only_themselves(pool: PgPool) {
    let streamer = Streamer::start(pool, 4, true, &[]).await;
    let iccids = streamer.connector.poller.last_seen().all_iccids().await.unwrap();
    let head = streamer.harness.head().await;
    let (mut records, _) = data_batch(&iccids, 95, 1);
    let malformed = [
        (3, json!("not an object")),
        (17, json!({"traffic_type": {"id": 5}, "volume": {"total": 1}})),
        (
            40,
            json!({"id": 900, "traffic_type": {"id": 5}, "volume": {"total": "lots"},
                     "end_timestamp": "2026-01-15T10:00:00Z", "sim": {"iccid": iccids[0]}}),
        ),
        (
            41,
            json!({"id": 901, "timestamp": "the other day", "event_type": {"id": 1}}),
        ),
        (
            99,
            json!({"id": 902, "traffic_type": {"id": 5}, "volume": {"total": 1},
                     "end_timestamp": "2026-01-15T10:00:00Z", "sim": {"iccid": "12345"}}),
        ),
    ];
    for (index, record) in &malformed {
        records.insert(*index, record.clone());
    }
    let (status, answer) = streamer.post(&records).await;
    assert_eq!((status, &answer["accepted"]), (200, &json!(95)), "{answer}");
    let reported: Vec<(u64, Value)> = answer["rejected"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["index"].as_u64().unwrap(), r["id"].clone()))
        .collect();
    assert_eq!(
        reported,
        [
            (3, Value::Null),
            (17, Value::Null),
            (40, json!(900)),
            (41, json!(901)),
            (99, json!(902))
        ]
    );
    assert!(answer["rejected"]
        .as_array()
        .unwrap()
        .iter()
        .all(|r| !r["reason"].as_str().unwrap().is_empty()));
    streamer.drain().await;
    assert_eq!(
        streamer.states().await,
        BTreeMap::from([("applied".to_owned(), 95)])
    );
    assert_eq!(streamer.harness.events_after(head).await["UsageRecorded"], 95);
    let rejects: i64 = sqlx::query_scalar("SELECT count(*) FROM streamer_rejects")
        .fetch_one(&streamer.harness.pool)
        .await
        .unwrap();
    assert_eq!(rejects, 5);
    streamer.harness.cleanup().await;
}

#[sqlx::test(migrator = "eventstore::MIGRATOR")]
async fn not_an_array_is_400_oversize_is_413_and_an_unconfigured_receiver_is_404(pool: PgPool) {
    let streamer = Streamer::start(pool.clone(), 1, false, &[("STREAMER_MAX_BODY_BYTES", "65536")]).await;
    for (body, code) in [
        ("{\"id\": 1}", "NOT_AN_ARRAY"),
        ("\"records\"", "NOT_AN_ARRAY"),
        ("[{\"id\": 1},", "INVALID_JSON"),
        ("<html>", "INVALID_JSON"),
    ] {
        let (status, answer) = streamer.post_as(body.into(), USER, SECRET).await;
        assert_eq!(
            (status, answer["error"]["code"].as_str()),
            (400, Some(code)),
            "{body}"
        );
        assert!(answer["error"]["request_id"].is_string(), "{answer}");
    }
    let iccids = streamer.harness.simulator().iccids();
    let (big, _) = data_batch(&iccids[..1], 200, 1);
    let (status, answer) = streamer.post(&big).await;
    assert_eq!(
        (status, answer["error"]["code"].as_str()),
        (413, Some("PAYLOAD_TOO_LARGE"))
    );
    let small: Vec<Value> = (0..3001).map(|i| json!({"id": i})).collect();
    let (status, answer) = streamer.post(&small).await;
    assert_eq!(
        (status, answer["error"]["code"].as_str()),
        (413, Some("TOO_MANY_RECORDS"))
    );
    assert_eq!(
        streamer.post(&[]).await,
        (200, json!({"accepted": 0, "duplicates": 0, "rejected": []}))
    );
    assert!(streamer.states().await.is_empty());

    // Without STREAMER_BASIC_AUTH the route does not exist.
    let mut off = streamer.harness.config();
    off.streamer.credentials.clear();
    let connector = Connector::new(off, pool, streamer.harness.nats.clone())
        .await
        .unwrap();
    let response = streamer
        .http
        .post(receiver_url(&connector).await)
        .basic_auth(USER, Some(SECRET))
        .body("[]")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 404);
    streamer.harness.cleanup().await;
}

#[sqlx::test(migrator = "eventstore::MIGRATOR")]
async fn a_configured_receiver_exports_every_series_before_its_first_batch(pool: PgPool) {
    let streamer = Streamer::start(pool.clone(), 1, false, &[]).await;
    let metrics = streamer.connector.metrics.render();
    for series in [
        "streamer_records_received_total{stream=\"usage\",type=\"data\"} 0",
        "streamer_records_received_total{stream=\"events\",type=\"event_other\"} 0",
        "streamer_duplicates_total{stream=\"events\"} 0",
        "streamer_records_rejected_total 0",
        "streamer_records_settled_total{outcome=\"refused\",type=\"quota\"} 0",
        "streamer_receiver_errors_total{status=\"503\"} 0",
        "streamer_newest_record_timestamp_seconds{stream=\"usage\"} 0",
        "streamer_newest_record_age_seconds{stream=\"events\"} NaN",
    ] {
        assert!(metrics.contains(series), "{series} missing:\n{metrics}");
    }
    // The first record moves its stream's newest time off 0.
    let iccids = streamer.harness.simulator().iccids();
    assert_eq!(streamer.post(&[data_record(1, &iccids[0], 1_000)]).await.0, 200);
    let metrics = streamer.connector.metrics.render();
    assert!(
        metrics.contains("streamer_records_received_total{stream=\"usage\",type=\"data\"} 1"),
        "{metrics}"
    );
    assert!(
        !metrics.contains("streamer_newest_record_timestamp_seconds{stream=\"usage\"} 0\n"),
        "{metrics}"
    );

    // Without STREAMER_BASIC_AUTH no labelled series: the stall alert has nothing to watch.
    let mut off = streamer.harness.config();
    off.streamer.credentials.clear();
    let connector = Connector::new(off, pool, streamer.harness.nats.clone())
        .await
        .unwrap();
    let metrics = connector.metrics.render();
    for name in [
        "streamer_records_received_total{",
        "streamer_newest_record_timestamp_seconds{",
    ] {
        assert!(!metrics.contains(name), "{name} without a receiver:\n{metrics}");
    }
    streamer.harness.cleanup().await;
}
