//! The connector killed (SIGKILL) between the provider's top-up and its confirmation: after a
//! restart it learns from the provider's quota that the top-up happened, confirms it, and never
//! calls the provider a second time.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::common::Harness;
use chrono::Utc;
use domain::{Iccid, Quota, Sim};
use eventstore::{CommandContext, EventMetadata, EventStore};
use once_simulator::{Faults, SlowResponse};
use sqlx::PgPool;
use testkit::eventually;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use uuid::Uuid;

/// The relay of [`Harness::start_relay`], running until dropped.
type Relay = (watch::Sender<bool>, JoinHandle<()>);

/// The connector binary, killed when dropped (even when the test fails).
struct Process(Child);

impl Process {
    fn start(harness: &Harness, port: u16) -> Self {
        let mut command = Command::new(env!("CARGO_BIN_EXE_sync-connector"));
        command
            .envs(&harness.env)
            .env("CONNECTOR_ADDR", format!("127.0.0.1:{port}"))
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit());
        Self(command.spawn().expect("start the sync-connector binary"))
    }

    fn kill(&mut self) {
        // `Child::kill` is SIGKILL on Unix: no shutdown code runs.
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        self.kill();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A fleet of three the platform knows (one poll, in-process), the relay running, and the
/// connector binary started against a provider that carries calls to `slow_path` out at once
/// but answers them only after a long delay.
async fn binary_with_slow_answers(pool: &PgPool, slow_path: &str) -> (Harness, Relay, Process) {
    let (harness, polled) = Harness::polled(
        pool.clone(),
        3,
        10,
        &[
            ("SYNC_REQUESTS_PER_SECOND", "9"),
            ("SYNC_REQUEST_ACK_WAIT_SECS", "3"),
            ("SYNC_POLL_INTERVAL_SECS", "3600"),
        ],
    )
    .await;
    // The in-process connector only made the fleet known; the binary carries out the requests.
    drop(polled);
    let relay = harness.start_relay();
    harness.simulator().set_faults(Faults {
        slow_response: Some(SlowResponse {
            path_contains: slow_path.into(),
            delay_ms: 20_000,
        }),
        ..Faults::default()
    });
    let process = Process::start(&harness, free_port());
    (harness, relay, process)
}

/// Kills the binary while the provider's answer is still on the way (nothing is confirmed
/// yet), restarts it with the provider answering promptly again, and waits for `confirmed`
/// and past a redelivery. Returns the restarted binary.
async fn kill_and_restart(harness: &Harness, mut process: Process, confirmed: &str, what: &str) -> Process {
    process.kill();
    assert_eq!(harness.count(confirmed).await, 0);
    harness.simulator().set_faults(Faults::default());
    let restarted = Process::start(harness, free_port());
    eventually(Duration::from_secs(60), what, || async {
        harness.count(confirmed).await == 1
    })
    .await;
    tokio::time::sleep(Duration::from_secs(4)).await; // past a redelivery
    restarted
}

#[sqlx::test(migrator = "eventstore::MIGRATOR")]
async fn a_connector_killed_after_the_provider_call_tops_up_exactly_once(pool: PgPool) {
    // The provider carries the top-up out at once but answers only after a long delay.
    let (harness, _relay, process) = binary_with_slow_answers(&pool, "/topup").await;
    let iccid = harness.simulator().iccids()[0].clone();

    let store = EventStore::new(pool.clone());
    let sim = store.load::<Sim>(&iccid).await.unwrap().state;
    let (quota_id, request_id) = harness.request_top_up(&iccid, sim.status()).await;

    // The order reached the provider; its answer is still on the way: kill the connector.
    eventually(
        Duration::from_secs(60),
        "the top-up to reach the provider",
        || async { harness.simulator().top_ups(&iccid) == 1 },
    )
    .await;
    assert_eq!(
        harness.dispatch_state(request_id).await,
        "dispatching",
        "the dispatch is recorded before the call"
    );
    // Restarted (and the provider answering promptly again): reconciled, not re-sent.
    let _process = kill_and_restart(&harness, process, "TopUpCompleted", "the top-up to be confirmed").await;
    assert_eq!(
        harness.simulator().top_ups(&iccid),
        1,
        "exactly one top-up at the provider"
    );
    assert_eq!(harness.count("TopUpCompleted").await, 1);
    let (state, outcome): (String, Option<String>) =
        sqlx::query_as("SELECT state, outcome FROM sync_dispatches WHERE request_id = $1")
            .bind(request_id)
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(
        (state.as_str(), outcome.as_deref()),
        ("completed", Some("completed"))
    );
    let quota = store.load::<Quota>(&quota_id).await.unwrap().state;
    assert!(quota.pending_top_up().is_none());
    harness.cleanup().await;
}

#[sqlx::test(migrator = "eventstore::MIGRATOR")]
async fn a_connector_killed_after_handing_over_an_sms_sends_it_exactly_once(pool: PgPool) {
    let (harness, _relay, process) = binary_with_slow_answers(&pool, "/sms").await;
    let iccid = harness.simulator().iccids()[2].clone();

    let store = EventStore::new(pool.clone());
    let message_id = Uuid::now_v7();
    store
        .execute::<domain::Sms>(
            &message_id.to_string(),
            &iccid,
            domain::SmsCommand::RequestSend {
                message_id,
                iccid: Iccid::parse(&iccid).unwrap(),
                payload: "open valve 3".into(),
                source_address: None,
                at: Utc::now(),
            },
            &CommandContext::new(EventMetadata::new("user:operator")),
        )
        .await
        .unwrap();
    eventually(
        Duration::from_secs(60),
        "the SMS to reach the provider",
        || async { harness.simulator().mt_sms(&iccid).len() == 1 },
    )
    .await;
    let _process = kill_and_restart(&harness, process, "SmsSubmitted", "the SMS to be confirmed").await;
    let sent = harness.simulator().mt_sms(&iccid);
    assert_eq!(sent.len(), 1, "exactly one SMS at the provider");
    // The confirmation names the provider's message.
    let submitted: serde_json::Value = sqlx::query_scalar(
        "SELECT payload FROM events WHERE event_type = 'SmsSubmitted' AND aggregate_id = $1",
    )
    .bind(message_id.to_string())
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(submitted["provider_message_id"], sent[0].0.to_string());
    harness.cleanup().await;
}

/// Posts a batch to the binary's receiver, as 1NCE does; `None` when no answer came.
async fn post_batch(port: u16, body: &str) -> Option<(u16, serde_json::Value)> {
    use crate::streamer::{SECRET, USER};
    let response = reqwest::Client::new()
        .post(format!("http://127.0.0.1:{port}/1nce/data-streamer"))
        .basic_auth(USER, Some(SECRET))
        .body(body.to_owned())
        .send()
        .await
        .ok()?;
    let status = response.status().as_u16();
    Some((status, response.json().await.ok()?))
}

async fn wait_listening(port: u16) {
    eventually(
        Duration::from_secs(60),
        "the connector to listen",
        || async move {
            reqwest::get(format!("http://127.0.0.1:{port}/health"))
                .await
                .is_ok()
        },
    )
    .await;
}

/// The binary killed (SIGKILL) while a batch is on the way and again between its answer and
/// the applier's work: 1NCE sends the batch again, and every record counts exactly once.
#[sqlx::test(migrator = "eventstore::MIGRATOR")]
async fn a_streamed_batch_survives_kills_before_the_answer_and_before_the_apply(pool: PgPool) {
    use crate::streamer::{data_batch, day_start, DAY, SECRET, USER};
    let auth = format!("{USER}:{SECRET}");
    let (harness, polled) = Harness::polled(
        pool.clone(),
        10,
        0,
        &[
            ("STREAMER_BASIC_AUTH", auth.as_str()),
            ("STREAMER_APPLY_BATCH", "50"),
            ("STREAMER_APPLY_CONCURRENCY", "2"),
            ("SYNC_POLL_INTERVAL_SECS", "3600"),
        ],
    )
    .await;
    let iccids = polled.poller.last_seen().all_iccids().await.unwrap();
    drop(polled);
    let (records, expected) = data_batch(&iccids, 3000, 1_000_000);
    let body = serde_json::Value::from(records).to_string();

    // Killed while the batch is on the way: stored or not, 1NCE got no 200 and resends it.
    let port = free_port();
    let mut process = Process::start(&harness, port);
    wait_listening(port).await;
    let in_flight = tokio::spawn({
        let body = body.clone();
        async move { post_batch(port, &body).await }
    });
    tokio::time::sleep(Duration::from_millis(40)).await;
    process.kill();
    let first = in_flight.await.unwrap();

    // Restarted: the resend is answered 200 once every record is stored; killed right then,
    // with most records not applied yet.
    let port = free_port();
    let mut process = Process::start(&harness, port);
    wait_listening(port).await;
    let (status, answer) = post_batch(port, &body).await.expect("an answer");
    process.kill();
    assert_eq!(status, 200, "{answer}");
    assert_eq!(
        answer["accepted"].as_u64().unwrap() + answer["duplicates"].as_u64().unwrap(),
        3000
    );
    let applied: i64 = sqlx::query_scalar("SELECT count(*) FROM streamer_records WHERE state = 'applied'")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert!(
        applied < 3000,
        "the kill came after the applier finished; first answer {first:?}"
    );

    // Restarted again, and a third delivery: everything applied, each record once.
    let port = free_port();
    let _process = Process::start(&harness, port);
    wait_listening(port).await;
    assert_eq!(
        post_batch(port, &body).await.expect("an answer").1["duplicates"],
        3000
    );
    eventually(Duration::from_secs(120), "every record to be applied", || async {
        let applied: i64 =
            sqlx::query_scalar("SELECT count(*) FROM streamer_records WHERE state = 'applied'")
                .fetch_one(&pool)
                .await
                .unwrap();
        applied == 3000
    })
    .await;
    let usage_events: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM events WHERE event_type = 'UsageRecorded' AND payload->>'period_start' LIKE $1",
    )
    .bind(format!("{DAY}%"))
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(usage_events, 3000);
    let store = EventStore::new(pool.clone());
    for (iccid, bytes) in expected {
        let sim = store.load::<Sim>(&iccid).await.unwrap().state;
        assert_eq!(sim.usage_for(day_start()).unwrap().data_bytes, bytes, "{iccid}");
    }
    harness.cleanup().await;
}
