//! The relay against a real Postgres (a fresh database per test) and a real NATS JetStream
//! (a stream and subject prefix of its own per test, deleted at the end).

use std::collections::HashSet;
use std::time::Duration;

use async_nats::jetstream::{self, stream::StorageType};
use async_nats::HeaderMap;
use eventstore::{GlobalLog, LogCursor, StoredEvent};
use prometheus::Registry;
use relay::{
    message_cursor, message_id, Lag, Relay, RelayConfig, RelayError, HEADER_EXPECTED_LAST_MSG_ID,
    HEADER_EXPECTED_LAST_SEQUENCE, HEADER_MSG_ID, HEADER_POSITION, HEADER_STORE_ID, HEADER_TRANSACTION_ID,
};
use sqlx::{PgConnection, PgPool};

const NATS_URL: &str = "nats://127.0.0.1:4222";
const DEADLINE: Duration = Duration::from_secs(20);

// ---------------------------------------------------------------------------------------------
// Helpers

/// A stream and prefix of the test's own; the stream is deleted when the guard drops (even
/// when the test panics), so tests run in parallel and leave nothing behind.
struct TestStream {
    config: RelayConfig,
    js: jetstream::Context,
}

impl TestStream {
    /// With the tests' settings: a short poll and lock retry.
    async fn new() -> Self {
        Self::with(|config| config).await
    }

    /// With the tests' settings as `adjust` changes them.
    async fn with(adjust: impl FnOnce(RelayConfig) -> RelayConfig) -> Self {
        let id = uuid::Uuid::new_v4().simple().to_string();
        let config = adjust(RelayConfig {
            stream: format!("T_{id}"),
            subject_prefix: format!("t{id}"),
            poll_interval: Duration::from_millis(10),
            lock_retry_interval: Duration::from_millis(100),
            ..RelayConfig::default()
        });
        Self {
            config,
            js: jetstream::new(nats().await),
        }
    }

    /// With batches of `batch_size` events.
    async fn with_batch_size(batch_size: usize) -> Self {
        Self::with(|config| RelayConfig { batch_size, ..config }).await
    }

    /// A relay of this stream on `pool`'s database, and the registry of its metrics.
    async fn relay(&self, pool: &PgPool) -> (Relay, Registry) {
        let registry = Registry::new();
        let relay = Relay::new(self.config.clone(), pool.clone(), nats().await, &registry).expect("relay");
        (relay, registry)
    }

    /// `count` events stored ([`store_events`]) and published by a relay of their own, which is
    /// then dropped (no clean shutdown): the whole log.
    async fn publish_stored_then_drop(&self, pool: &PgPool, count: usize) -> Vec<StoredEvent> {
        let (relay, _registry, events) = self.relay_caught_up(pool, count).await;
        drop(relay);
        events
    }

    /// `count` events stored ([`store_events`]) and a relay that has published them; the
    /// registry of its metrics and the whole log.
    async fn relay_caught_up(&self, pool: &PgPool, count: usize) -> (Relay, Registry, Vec<StoredEvent>) {
        let events = store_events(pool, 0, count).await;
        let (mut relay, registry) = self.relay(pool).await;
        publish_all(&mut relay, count as u64).await;
        (relay, registry, events)
    }

    /// A relay started now finds the stream behind its checkpoint, republishes the `lost`
    /// events counting one rewind, and the stream equals the log again.
    async fn assert_refilled(&self, pool: &PgPool, lost: u64, events: &[StoredEvent]) {
        let (mut relay, _registry) = self.relay(pool).await;
        publish_all(&mut relay, lost).await;
        assert_eq!(relay.metrics().rewinds.get(), 1);
        self.assert_equals_log(events).await;
    }

    /// Every message in the stream, in stream order.
    async fn messages(&self) -> Vec<jetstream::message::StreamMessage> {
        let Ok(mut stream) = self.js.get_stream(&self.config.stream).await else {
            return Vec::new(); // not created yet
        };
        let state = stream.info().await.expect("info").state.clone();
        let mut messages = Vec::new();
        if state.messages == 0 {
            return messages;
        }
        for sequence in state.first_sequence..=state.last_sequence {
            if let Ok(message) = stream.get_raw_message(sequence).await {
                messages.push(message);
            }
        }
        messages
    }

    async fn wait_for_messages(&self, count: usize) -> Vec<jetstream::message::StreamMessage> {
        let deadline = tokio::time::Instant::now() + DEADLINE;
        loop {
            let messages = self.messages().await;
            if messages.len() >= count || tokio::time::Instant::now() > deadline {
                return messages;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// [`assert_stream_equals_log`] for the stream as it is now.
    async fn assert_equals_log(&self, events: &[StoredEvent]) {
        assert_stream_equals_log(&self.config, &self.messages().await, events);
    }

    /// Publishes a message of the test's own (another publisher's) and waits for its ack.
    async fn publish_acked(&self, subject: impl async_nats::ToSubject, headers: HeaderMap, payload: Vec<u8>) {
        self.js
            .publish_with_headers(subject, headers, payload.into())
            .await
            .unwrap()
            .await
            .unwrap();
    }

    /// `event` on its subject with `headers`, as a relay would publish it.
    async fn publish_event(&self, event: &StoredEvent, headers: HeaderMap) {
        let subject = self.config.subject(&event.iccid, &event.event_type).unwrap();
        self.publish_acked(subject, headers, serde_json::to_vec(event).unwrap())
            .await;
    }
}

impl Drop for TestStream {
    fn drop(&mut self) {
        let name = self.config.stream.clone();
        // Async work cannot run in drop; a short-lived runtime on its own thread can.
        let _ = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async move {
                if let Ok(client) = async_nats::connect(NATS_URL).await {
                    let _ = jetstream::new(client).delete_stream(&name).await;
                }
            });
        })
        .join();
    }
}

/// A relay running on its own (`Relay::run`) until [`RunningRelay::stop`].
struct RunningRelay {
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<()>,
}

impl RunningRelay {
    fn start(relay: Relay) -> Self {
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(relay.run(async move {
            let _ = stopped.await;
        }));
        Self { stop, task }
    }

    /// A clean shutdown: asks it to stop and waits for its end.
    async fn stop(self) {
        self.stop.send(()).unwrap();
        self.task.await.unwrap();
    }
}

async fn nats() -> async_nats::Client {
    async_nats::connect(NATS_URL)
        .await
        .expect("NATS at 127.0.0.1:4222")
}

fn iccid(n: usize) -> String {
    format!("89883030000000{:05}", n % 7)
}

async fn insert(conn: &mut PgConnection, aggregate_id: &str, sequence: i64, n: usize) -> i64 {
    sqlx::query_scalar(
        "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata, iccid) \
         VALUES ('test', $1, $2, $3, '1.0', $4, $5, $6) RETURNING position",
    )
    .bind(aggregate_id)
    .bind(sequence)
    .bind(["Happened", "AlsoHappened"][n % 2])
    .bind(serde_json::json!({ "n": n, "text": "é ünïcode" }))
    .bind(serde_json::json!({ "actor": "user:test", "correlation_id": format!("c{n}") }))
    .bind(iccid(n))
    .fetch_one(conn)
    .await
    .expect("insert event")
}

/// `count` events over 5 aggregates, numbered from `from`, each in its own transaction.
async fn insert_events(pool: &PgPool, from: usize, count: usize) {
    let mut conn = pool.acquire().await.unwrap();
    for n in from..from + count {
        insert(&mut conn, &format!("agg-{}", n % 5), (n / 5 + 1) as i64, n).await;
    }
}

/// The whole log in global order, once every committed event is readable (transactions of
/// tests running in parallel, in other databases, hold the horizon back for a moment).
async fn log_events(pool: &PgPool, expected: usize) -> Vec<StoredEvent> {
    let log = GlobalLog::new(pool.clone());
    let deadline = tokio::time::Instant::now() + DEADLINE;
    loop {
        let events = log.read_after(LogCursor::START, 100_000).await.unwrap();
        if events.len() >= expected || tokio::time::Instant::now() > deadline {
            assert_eq!(events.len(), expected, "events readable in the log");
            return events;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// [`insert_events`], then the whole log ([`log_events`]) once they are readable.
async fn store_events(pool: &PgPool, from: usize, count: usize) -> Vec<StoredEvent> {
    insert_events(pool, from, count).await;
    log_events(pool, from + count).await
}

/// Calls `publish_pending_once` until the relay has published `expected` events in all.
async fn publish_all(relay: &mut Relay, expected: u64) {
    let deadline = tokio::time::Instant::now() + DEADLINE;
    while relay.metrics().events_published.get() < expected {
        assert!(
            tokio::time::Instant::now() < deadline,
            "relay did not publish {expected} events in time"
        );
        match relay.publish_pending_once().await {
            Ok(0) => tokio::time::sleep(Duration::from_millis(10)).await,
            Ok(_) => {}
            Err(error) => panic!("publish failed: {error}"),
        }
    }
    assert_eq!(relay.metrics().events_published.get(), expected);
}

/// Calls `publish_pending_once` until the stream holds `count` messages, failing with `what`
/// after [`DEADLINE`]; `attempted` sees every attempt's result.
async fn publish_until_the_stream_holds(
    test: &TestStream,
    relay: &mut Relay,
    count: usize,
    what: &str,
    mut attempted: impl FnMut(Result<usize, RelayError>),
) {
    let deadline = tokio::time::Instant::now() + DEADLINE;
    while test.messages().await.len() < count {
        assert!(tokio::time::Instant::now() < deadline, "{what}");
        attempted(relay.publish_pending_once().await);
    }
}

/// The relay's next attempt stops at a mismatch of the stream at `sequence`: its reason.
async fn mismatch_at(relay: &mut Relay, sequence: u64) -> relay::wire::Mismatch {
    match relay.publish_pending_once().await {
        Err(RelayError::StreamMismatch {
            sequence: found,
            reason,
            ..
        }) if found == sequence => reason,
        other => panic!("expected a mismatch, got {other:?}"),
    }
}

/// The relay's lag, refreshed.
async fn refreshed_lag(relay: &mut Relay) -> Lag {
    relay.refresh_lag().await.unwrap();
    relay.metrics().lag().expect("the leader exports its lag")
}

/// Nothing readable is left unpublished.
async fn assert_caught_up(relay: &mut Relay) {
    let lag = refreshed_lag(relay).await;
    assert_eq!(lag.events, 0);
    assert_eq!(lag.seconds, 0.0);
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> &'a str {
    headers
        .get(name)
        .map(|v| v.as_str())
        .unwrap_or_else(|| panic!("header {name} missing"))
}

/// The stream holds exactly the log's events, once each, in global order, with the right
/// subjects, headers and envelopes.
fn assert_stream_equals_log(
    config: &RelayConfig,
    messages: &[jetstream::message::StreamMessage],
    events: &[StoredEvent],
) {
    let ids: Vec<&str> = messages
        .iter()
        .map(|m| header(&m.headers, HEADER_MSG_ID))
        .collect();
    let unique: HashSet<&str> = ids.iter().copied().collect();
    assert_eq!(unique.len(), ids.len(), "no message id twice in the stream");
    assert_eq!(messages.len(), events.len(), "one message per event");
    for (message, event) in messages.iter().zip(events) {
        assert_eq!(
            message.subject.as_str(),
            format!(
                "{}.v1.{}.{}",
                config.subject_prefix, event.iccid, event.event_type
            )
        );
        assert_eq!(
            header(&message.headers, HEADER_MSG_ID),
            format!(
                "{}:{}:{}",
                event.aggregate_type, event.aggregate_id, event.sequence
            )
        );
        assert_eq!(
            header(&message.headers, HEADER_POSITION),
            event.position.to_string()
        );
        assert_eq!(
            header(&message.headers, HEADER_TRANSACTION_ID),
            event.transaction_id.unwrap().to_string()
        );
        assert_eq!(message_cursor(&message.headers), Some(LogCursor::after(event)));
        let envelope: serde_json::Value = serde_json::from_slice(&message.payload).unwrap();
        assert_eq!(envelope, serde_json::to_value(event).unwrap());
        for field in [
            "position",
            "aggregate_type",
            "aggregate_id",
            "sequence",
            "event_type",
            "event_version",
            "recorded_at",
            "metadata",
            "payload",
        ] {
            assert!(envelope.get(field).is_some(), "envelope field {field}");
        }
    }
}

async fn checkpoint(pool: &PgPool, stream: &str) -> Option<(LogCursor, i64)> {
    let row: Option<(String, i64, i64)> = sqlx::query_as(
        "SELECT transaction_id::text, position, stream_sequence FROM relay_checkpoints WHERE stream = $1",
    )
    .bind(stream)
    .fetch_optional(pool)
    .await
    .unwrap();
    row.map(|(transaction_id, position, sequence)| {
        (
            LogCursor {
                transaction_id: transaction_id.parse().unwrap(),
                position,
            },
            sequence,
        )
    })
}

// ---------------------------------------------------------------------------------------------
// 1. Every event arrives exactly once, in global order, with subject, headers and envelope.

#[sqlx::test(migrator = "eventstore::MIGRATOR")]
async fn publishes_every_event_once_in_global_order(pool: PgPool) {
    let test = TestStream::with(|config| RelayConfig {
        batch_size: 64,
        max_in_flight: 16,
        ..config
    })
    .await;
    let config = &test.config;
    let events = store_events(&pool, 0, 300).await;

    let (mut relay, registry) = test.relay(&pool).await;
    publish_all(&mut relay, 300).await;
    assert_eq!(relay.publish_pending_once().await.unwrap(), 0, "caught up");

    let messages = test.messages().await;
    assert_stream_equals_log(config, &messages, &events);
    // Pipelined publishes each expected the sequence before their own and, within a batch,
    // their predecessor as the last message.
    let mut chained = 0;
    for (i, message) in messages.iter().enumerate() {
        assert_eq!(
            header(&message.headers, HEADER_EXPECTED_LAST_SEQUENCE),
            (message.sequence - 1).to_string()
        );
        if let Some(previous) = message.headers.get(HEADER_EXPECTED_LAST_MSG_ID) {
            assert_eq!(previous.as_str(), header(&messages[i - 1].headers, HEADER_MSG_ID));
            chained += 1;
        }
    }
    assert_eq!(chained, 300 - 5, "all but each batch's first message are chained");

    let last = events.last().unwrap();
    assert_eq!(
        checkpoint(&pool, &config.stream).await,
        Some((LogCursor::after(last), 300))
    );
    assert_eq!(relay.cursor(), Some(LogCursor::after(last)));

    // The stream the relay created.
    let mut stream = test.js.get_stream(&config.stream).await.unwrap();
    let info = stream.info().await.unwrap();
    assert_eq!(
        info.config.subjects,
        vec![format!("{}.v1.>", config.subject_prefix)]
    );
    assert_eq!(info.config.storage, StorageType::File);
    assert_eq!(info.config.duplicate_window, Duration::from_secs(600));

    assert_caught_up(&mut relay).await;
    let metrics = relay.metrics();
    assert_eq!(metrics.is_leader.get(), 1);
    assert_eq!(metrics.rewinds.get(), 0);
    assert_eq!(metrics.stream_mismatch.get(), 0);
    let names: HashSet<String> = registry.gather().iter().map(|f| f.name().to_owned()).collect();
    for name in [
        "relay_events_published_total",
        "relay_lag_events",
        "relay_lag_seconds",
        "relay_horizon_holder_age_seconds",
        "relay_rewinds_total",
        "relay_is_leader",
        "relay_stream_mismatch",
    ] {
        assert!(names.contains(name), "metric {name} registered");
    }
}

/// Lag reports what is readable and not yet published.
#[sqlx::test(migrator = "eventstore::MIGRATOR")]
async fn lag_counts_unpublished_events(pool: PgPool) {
    let test = TestStream::with_batch_size(10).await;
    store_events(&pool, 0, 25).await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    let (mut relay, _registry) = test.relay(&pool).await;
    assert_eq!(relay.metrics().lag(), None, "no lag before leading");
    assert_eq!(relay.publish_pending_once().await.unwrap(), 10);
    let lag = refreshed_lag(&mut relay).await;
    assert_eq!(lag.events, 15);
    assert!(lag.seconds >= 0.05, "age of the oldest unpublished event");
    assert_eq!(relay.publish_pending_once().await.unwrap(), 10);
    assert_eq!(relay.publish_pending_once().await.unwrap(), 5);
    assert_caught_up(&mut relay).await;
}

// ---------------------------------------------------------------------------------------------
// 2. A restarted relay continues without loss or duplicates.

#[sqlx::test(migrator = "eventstore::MIGRATOR")]
async fn restarted_relay_continues_without_loss_or_duplicates(pool: PgPool) {
    let test = TestStream::with_batch_size(30).await;
    store_events(&pool, 0, 100).await;

    let (mut first, _r1) = test.relay(&pool).await;
    assert_eq!(first.publish_pending_once().await.unwrap(), 30);
    assert_eq!(first.publish_pending_once().await.unwrap(), 30);
    drop(first); // mid-stream, no clean shutdown

    let events = store_events(&pool, 100, 50).await;
    let (mut second, _r2) = test.relay(&pool).await;
    publish_all(&mut second, 90).await;

    test.assert_equals_log(&events).await;
    assert_eq!(second.metrics().rewinds.get(), 0);
}

/// A relay that died after JetStream stored a batch but before its checkpoint commit: the
/// next one finds the stream ahead and continues after the stream's last message instead of
/// republishing (which JetStream would drop as duplicates, but only within its window).
#[sqlx::test(migrator = "eventstore::MIGRATOR")]
async fn stream_ahead_of_checkpoint_moves_forward(pool: PgPool) {
    let test = TestStream::new().await;
    let events = test.publish_stored_then_drop(&pool, 40).await;

    // As if the checkpoint had stayed at event 10.
    sqlx::query(
        "UPDATE relay_checkpoints SET transaction_id = $1::text::xid8, position = $2, stream_sequence = 10",
    )
    .bind(events[9].transaction_id.unwrap().to_string())
    .bind(events[9].position)
    .execute(&pool)
    .await
    .unwrap();
    let events = store_events(&pool, 40, 5).await;

    let (mut second, _r2) = test.relay(&pool).await;
    assert_eq!(
        second.publish_pending_once().await.unwrap(),
        5,
        "only the new events"
    );
    test.assert_equals_log(&events).await;
    assert_eq!(second.metrics().rewinds.get(), 0);
    assert_eq!(
        checkpoint(&pool, &test.config.stream).await,
        Some((LogCursor::after(events.last().unwrap()), 45))
    );
}

// ---------------------------------------------------------------------------------------------
// 3. The stream lost acknowledged messages: the relay notices at start and republishes.

/// JetStream kept only the first 25 of 40 acknowledged messages (as after an OS crash with lazy
/// fsync: the stream's tail and the memory of its ids are gone). Simulated by recreating the
/// stream with copies of its first 25 messages.
#[sqlx::test(migrator = "eventstore::MIGRATOR")]
async fn stream_behind_checkpoint_is_refilled(pool: PgPool) {
    let test = TestStream::new().await;
    let events = test.publish_stored_then_drop(&pool, 40).await;

    let kept: Vec<_> = test.messages().await.into_iter().take(25).collect();
    test.js.delete_stream(&test.config.stream).await.unwrap();
    let (second, _r2) = test.relay(&pool).await;
    second.ensure_stream().await.unwrap();
    for message in &kept {
        test.publish_acked(
            message.subject.clone(),
            message.headers.clone(),
            message.payload.to_vec(),
        )
        .await;
    }
    assert_eq!(test.messages().await.len(), 25);
    drop(second);

    test.assert_refilled(&pool, 15, &events).await;
}

/// The whole stream is gone (recreated empty): everything is republished from the start.
#[sqlx::test(migrator = "eventstore::MIGRATOR")]
async fn empty_stream_is_refilled_from_the_start(pool: PgPool) {
    let test = TestStream::new().await;
    let events = test.publish_stored_then_drop(&pool, 20).await;
    test.js.delete_stream(&test.config.stream).await.unwrap();

    test.assert_refilled(&pool, 20, &events).await;
}

/// A purge empties the stream but JetStream still remembers the ids within its duplicate
/// window, so a republish is dropped as a duplicate: the relay says so, does not skip the
/// event, and counts the rewind once however often it retries.
#[sqlx::test(migrator = "eventstore::MIGRATOR")]
async fn purged_stream_is_detected_and_never_skipped(pool: PgPool) {
    let test = TestStream::new().await;
    test.publish_stored_then_drop(&pool, 10).await;
    test.js
        .get_stream(&test.config.stream)
        .await
        .unwrap()
        .purge()
        .await
        .unwrap();

    let (mut restarted, _r2) = test.relay(&pool).await;
    for _ in 0..3 {
        match restarted.publish_pending_once().await {
            Err(RelayError::ForgottenDuplicate { msg_id, .. }) => assert_eq!(msg_id, "test:agg-0:1"),
            other => panic!("expected a forgotten duplicate, got {other:?}"),
        }
    }
    assert_eq!(restarted.metrics().rewinds.get(), 1);
    assert_eq!(restarted.metrics().events_published.get(), 0);
    assert_eq!(
        restarted.cursor(),
        None,
        "not synced: the next call looks at the stream again"
    );
    assert!(test.messages().await.is_empty());
}

// ---------------------------------------------------------------------------------------------
// 4. The stream must be this store's: a stale relay recovers, a foreign stream stops it.

/// The message the relay itself would publish for `event` (for tests that play a second
/// publisher of this very store).
async fn relay_message(pool: &PgPool, event: &StoredEvent) -> HeaderMap {
    let store_id = GlobalLog::new(pool.clone()).store_id().await.unwrap();
    let mut headers = HeaderMap::new();
    headers.insert(HEADER_MSG_ID, message_id(event).as_str());
    headers.insert(HEADER_POSITION, event.position.to_string().as_str());
    headers.insert(
        HEADER_TRANSACTION_ID,
        event.transaction_id.unwrap().to_string().as_str(),
    );
    headers.insert(HEADER_STORE_ID, store_id.to_string().as_str());
    headers
}

/// Another relay of this same store (one that still thinks it leads) appended an event behind
/// this one's back: this one is refused by NATS, finds an event of its own store at the tail,
/// and continues after it: nothing twice, nothing lost.
#[sqlx::test(migrator = "eventstore::MIGRATOR")]
async fn stale_relay_is_refused_and_recovers(pool: PgPool) {
    let test = TestStream::new().await;
    let (mut relay, _r, _) = test.relay_caught_up(&pool, 10).await;
    let events = store_events(&pool, 10, 10).await;

    let eleventh = &events[10];
    test.publish_event(eleventh, relay_message(&pool, eleventh).await)
        .await;

    // Refused (or, if JetStream checks the id first, a duplicate of itself): never stored twice.
    publish_until_the_stream_holds(
        &test,
        &mut relay,
        20,
        "relay did not recover",
        |attempt| match attempt {
            Ok(_) | Err(RelayError::StaleSequence { .. }) => {}
            Err(error) => panic!("unexpected error: {error}"),
        },
    )
    .await;
    test.assert_equals_log(&events).await;
    assert_eq!(relay.metrics().stream_mismatch.get(), 0);
    assert_eq!(relay.metrics().rewinds.get(), 0);
}

/// Anything at the tail that is not an event of this store (a foreign message, a forged one
/// with a huge transaction id) stops publishing: the relay says why with the stream sequence,
/// `relay_stream_mismatch` is 1, the readiness flag is set; it stays so (never an endless
/// republish loop) until `reset-stream`, after which the stream equals the store again.
#[sqlx::test(migrator = "eventstore::MIGRATOR")]
async fn a_foreign_or_forged_tail_stops_the_relay_until_the_stream_is_reset(pool: PgPool) {
    let test = TestStream::new().await;
    let config = &test.config;
    store_events(&pool, 0, 10).await;
    let flags = platform::http::ReadinessFlags::new();
    let (relay, _r) = test.relay(&pool).await;
    let mut relay = relay.with_readiness(flags.clone());
    publish_all(&mut relay, 10).await;
    let events = store_events(&pool, 10, 10).await;

    // A forged copy of the next event with a transaction id beyond every real one: followed,
    // it would move the relay's cursor past every event still to come.
    let mut headers = relay_message(&pool, &events[10]).await;
    headers.insert(HEADER_TRANSACTION_ID, "18446744073709551615");
    test.publish_event(&events[10], headers).await;
    // The first attempt may still append what was in flight behind the forged message (it
    // carries the id they chain to); from then on nothing more.
    let mut after_first = 0;
    for attempt in 0..3 {
        match relay.publish_pending_once().await {
            Err(RelayError::StaleSequence { .. }) if attempt == 0 => {}
            Err(RelayError::StreamMismatch { sequence, reason, .. }) => {
                assert_eq!(sequence, 11);
                assert!(reason.to_string().contains("transaction id"), "{reason}");
            }
            other => panic!("attempt {attempt}: expected a refusal, then a mismatch; got {other:?}"),
        }
        if attempt == 0 {
            after_first = test.messages().await.len();
        }
    }
    assert_eq!(relay.metrics().stream_mismatch.get(), 1);
    assert_eq!(relay.metrics().events_published.get(), 10);
    let reason = flags.reason(relay::READINESS_FLAG).expect("readiness flag set");
    assert!(
        reason.contains("stream sequence 11") && reason.contains("reset-stream"),
        "{reason}"
    );
    assert_eq!(test.messages().await.len(), after_first, "nothing more published");

    let report = relay::admin::verify(&pool, nats().await, config, true)
        .await
        .unwrap();
    assert!(!report.ok());
    let full = report.full.as_ref().unwrap();
    assert_eq!(full.mismatching, 1);
    assert_eq!(full.mismatches[0].0, 11);

    let reset = relay::admin::reset_stream(&pool, nats().await, config)
        .await
        .unwrap();
    assert_eq!(reset.deleted_messages, Some(after_first as u64));
    publish_until_the_stream_holds(&test, &mut relay, 20, "relay did not republish", |_| {}).await;
    test.assert_equals_log(&events).await;
    assert_eq!(relay.metrics().stream_mismatch.get(), 0);
    assert_eq!(flags.reason(relay::READINESS_FLAG), None);
    let report = relay::admin::verify(&pool, nats().await, config, true)
        .await
        .unwrap();
    assert!(report.ok(), "{report:?}");
}

/// A relay starting against a stream whose last message is not an event (another publisher's
/// plain message) refuses it at once.
#[sqlx::test(migrator = "eventstore::MIGRATOR")]
async fn a_restarted_relay_refuses_a_stream_with_a_foreign_tail(pool: PgPool) {
    let test = TestStream::new().await;
    test.publish_stored_then_drop(&pool, 5).await;
    test.js
        .publish(
            format!("{}.v1.foreign.Thing", test.config.subject_prefix),
            "x".into(),
        )
        .await
        .unwrap()
        .await
        .unwrap();
    store_events(&pool, 5, 5).await;
    let (mut second, _r2) = test.relay(&pool).await;
    assert_eq!(
        mismatch_at(&mut second, 6).await,
        relay::wire::Mismatch::NotAnEvent
    );
    assert_eq!(test.messages().await.len(), 6);
    assert!(second.mismatch().is_some());
}

/// A fresh database pointed at a stream another database filled: its relay recognises the
/// other store (its id on the tail message) and publishes nothing, instead of following the
/// other store's cursor or looping on duplicates of its ids.
#[sqlx::test(migrator = "eventstore::MIGRATOR")]
async fn a_stream_filled_from_another_database_is_refused(pool: PgPool) {
    let test = TestStream::new().await;
    test.publish_stored_then_drop(&pool, 10).await;

    let other = OtherDatabase::create(&pool).await;
    store_events(&other.pool, 0, 3).await;
    let (mut fresh, _r2) = test.relay(&other.pool).await;
    for _ in 0..3 {
        let reason = mismatch_at(&mut fresh, 10).await;
        assert!(
            matches!(reason, relay::wire::Mismatch::OtherStore { .. }),
            "{reason}"
        )
    }
    assert_eq!(fresh.metrics().events_published.get(), 0);
    assert_eq!(test.messages().await.len(), 10);
    drop(fresh);
    other.drop_database().await;
}

/// A second database on the test's server, migrated, dropped at the end.
struct OtherDatabase {
    pool: PgPool,
    admin: PgPool,
    name: String,
}

impl OtherDatabase {
    async fn create(admin: &PgPool) -> Self {
        let name = format!("relay_other_{}", uuid::Uuid::new_v4().simple());
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(admin)
            .await
            .unwrap();
        let options = (*admin.connect_options()).clone().database(&name);
        let pool = sqlx::postgres::PgPoolOptions::new()
            .max_connections(4)
            .connect_with(options)
            .await
            .unwrap();
        eventstore::migrate(&pool).await.unwrap();
        Self {
            pool,
            admin: admin.clone(),
            name,
        }
    }

    async fn drop_database(self) {
        self.pool.close().await;
        sqlx::query(&format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name))
            .execute(&self.admin)
            .await
            .unwrap();
    }
}

// ---------------------------------------------------------------------------------------------
// 5. One active relay; the standby takes over when it dies.

#[sqlx::test(migrator = "eventstore::MIGRATOR")]
async fn only_the_lock_holder_publishes_and_the_standby_takes_over(pool: PgPool) {
    let test = TestStream::with_batch_size(7).await;
    store_events(&pool, 0, 50).await;

    let (a, _ra) = test.relay(&pool).await;
    let (b, _rb) = test.relay(&pool).await;
    let (a_metrics, b_metrics) = (a.metrics().clone(), b.metrics().clone());
    let a_task = tokio::spawn(a.run(std::future::pending()));
    let b_task = tokio::spawn(b.run(std::future::pending()));

    assert_eq!(test.wait_for_messages(50).await.len(), 50);
    let published = (a_metrics.events_published.get(), b_metrics.events_published.get());
    assert!(
        published == (50, 0) || published == (0, 50),
        "one relay published all: {published:?}"
    );
    assert_eq!(a_metrics.is_leader.get() + b_metrics.is_leader.get(), 1);
    let (leader_task, standby_task, standby_metrics) = if published.0 == 50 {
        (a_task, b_task, b_metrics)
    } else {
        (b_task, a_task, a_metrics)
    };

    // The leader dies: its task and lock connection are gone without a goodbye.
    leader_task.abort();
    let _ = leader_task.await;
    let died = tokio::time::Instant::now();
    let events = store_events(&pool, 50, 30).await;
    let messages = test.wait_for_messages(80).await;
    assert!(
        died.elapsed() < Duration::from_secs(10),
        "took over in {:?}",
        died.elapsed()
    );
    assert_stream_equals_log(&test.config, &messages, &events);
    assert_eq!(standby_metrics.events_published.get(), 30);
    assert_eq!(standby_metrics.is_leader.get(), 1);
    standby_task.abort();
    let _ = standby_task.await;
}

/// The lock's connection is killed under a leader: it stops at once and the other relay
/// takes over; the old leader then stands by.
#[sqlx::test(migrator = "eventstore::MIGRATOR")]
async fn relay_whose_lock_connection_dies_stops_publishing(pool: PgPool) {
    let test = TestStream::new().await;
    store_events(&pool, 0, 5).await;
    let (mut a, _ra) = test.relay(&pool).await;
    let (mut b, _rb) = test.relay(&pool).await;
    publish_all(&mut a, 5).await;
    assert!(matches!(
        b.publish_pending_once().await,
        Err(RelayError::NotLeader)
    ));
    assert_eq!(b.metrics().is_leader.get(), 0);

    let killed: Vec<i32> = sqlx::query_scalar(
        "SELECT pg_terminate_backend(pid)::int FROM pg_locks \
         WHERE locktype = 'advisory' AND granted \
           AND database = (SELECT oid FROM pg_database WHERE datname = current_database())",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(killed.len(), 1, "one lock holder");

    let events = store_events(&pool, 5, 5).await;
    assert!(matches!(
        a.publish_pending_once().await,
        Err(RelayError::LeadershipLost(_))
    ));
    assert!(!a.is_leader());
    assert_eq!(a.metrics().is_leader.get(), 0);

    publish_all(&mut b, 5).await;
    assert!(matches!(
        a.publish_pending_once().await,
        Err(RelayError::NotLeader)
    ));
    assert_eq!(a.metrics().events_published.get(), 5);
    test.assert_equals_log(&events).await;
}

/// A clean shutdown releases the lock at once.
#[sqlx::test(migrator = "eventstore::MIGRATOR")]
async fn shutdown_releases_the_lock(pool: PgPool) {
    let test = TestStream::new().await;
    let (a, _ra) = test.relay(&pool).await;
    let a_metrics = a.metrics().clone();
    let running = RunningRelay::start(a);
    let deadline = tokio::time::Instant::now() + DEADLINE;
    while a_metrics.is_leader.get() == 0 {
        assert!(tokio::time::Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    running.stop().await;
    assert_eq!(a_metrics.is_leader.get(), 0);
    let (mut b, _rb) = test.relay(&pool).await;
    assert!(b.try_lead().await.unwrap());
}

// ---------------------------------------------------------------------------------------------
// 6. Events committed out of order by concurrent transactions are all published.

#[sqlx::test(migrator = "eventstore::MIGRATOR")]
async fn events_committed_out_of_order_are_all_published(pool: PgPool) {
    let test = TestStream::new().await;
    let mut t1 = pool.begin().await.unwrap();
    let mut t2 = pool.begin().await.unwrap();
    let p1 = insert(&mut t1, "a", 1, 1).await;
    let p2 = insert(&mut t2, "b", 1, 2).await;
    let p3 = insert(&mut t1, "a", 2, 3).await;
    let p4 = insert(&mut t2, "b", 2, 4).await;
    t2.commit().await.unwrap();

    let (mut relay, _r) = test.relay(&pool).await;
    for _ in 0..5 {
        assert_eq!(
            relay.publish_pending_once().await.unwrap(),
            0,
            "t1 holds everything back"
        );
    }
    assert!(test.messages().await.is_empty());

    t1.commit().await.unwrap();
    publish_all(&mut relay, 4).await;
    let events = log_events(&pool, 4).await;
    let positions: Vec<i64> = events.iter().map(|e| e.position).collect();
    assert_eq!(
        positions,
        vec![p1, p3, p2, p4],
        "global order: by transaction, then position"
    );
    test.assert_equals_log(&events).await;
    assert_eq!(message_id(&events[1]), "test:a:2");
}

/// A transaction held open while hundreds of others commit: nothing is published until it
/// ends, then everything, in order, in batches and with acknowledgements in flight.
#[sqlx::test(migrator = "eventstore::MIGRATOR")]
async fn a_burst_behind_a_held_transaction_is_published_in_order(pool: PgPool) {
    let test = TestStream::new().await;
    let (mut relay, _r, _) = test.relay_caught_up(&pool, 20).await;

    let mut held = pool.begin().await.unwrap();
    insert(&mut held, "held", 1, 999).await;
    insert_events(&pool, 20, 300).await;
    assert_eq!(relay.publish_pending_once().await.unwrap(), 0, "held back");
    held.commit().await.unwrap();
    publish_all(&mut relay, 321).await;
    let events = log_events(&pool, 321).await;
    test.assert_equals_log(&events).await;
}

/// As above, with the relay running on its own and three writers committing concurrently.
#[sqlx::test(migrator = "eventstore::MIGRATOR")]
async fn concurrent_writers_behind_a_held_transaction_are_published_in_order(pool: PgPool) {
    let test = TestStream::new().await;
    store_events(&pool, 0, 20).await;
    let (relay, _r) = test.relay(&pool).await;
    let running = RunningRelay::start(relay);
    test.wait_for_messages(20).await;

    let mut held = pool.begin().await.unwrap();
    insert(&mut held, "held", 1, 999).await;
    let mut writers = Vec::new();
    for w in 0..3 {
        let pool = pool.clone();
        writers.push(tokio::spawn(async move {
            let mut conn = pool.acquire().await.unwrap();
            for i in 0..100 {
                insert(&mut conn, &format!("w{w}"), i + 1, i as usize).await;
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }));
    }
    for writer in writers {
        writer.await.unwrap();
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(test.messages().await.len(), 20, "held back");
    held.commit().await.unwrap();
    let messages = test.wait_for_messages(321).await;
    let events = log_events(&pool, 321).await;
    running.stop().await;
    assert_stream_equals_log(&test.config, &messages, &events);
}

/// The relay wakes on commit: with the fallback poll at a minute, events still reach the
/// stream at once, and in order.
#[sqlx::test(migrator = "eventstore::MIGRATOR")]
async fn the_relay_wakes_on_commit_not_on_its_poll(pool: PgPool) {
    let test = TestStream::with(|config| RelayConfig {
        poll_interval: Duration::from_secs(60),
        ..config
    })
    .await;
    let (relay, _r) = test.relay(&pool).await;
    let running = RunningRelay::start(relay);
    // Let it lead, sync and go idle (listening).
    tokio::time::sleep(Duration::from_millis(1500)).await;
    for round in 0..3 {
        let started = tokio::time::Instant::now();
        insert_events(&pool, round * 5, 5).await;
        let messages = test.wait_for_messages((round + 1) * 5).await;
        assert_eq!(messages.len(), (round + 1) * 5);
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "published {:?} after the commit: the notification did not wake the relay",
            started.elapsed()
        );
    }
    running.stop().await;
    let events = log_events(&pool, 15).await;
    test.assert_equals_log(&events).await;
}
