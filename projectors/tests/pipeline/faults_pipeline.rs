//! The pipeline's trust boundary and its stalls, with real processes (the `projectors` binary,
//! private `nats-server` and PostgreSQL servers where a test changes or stops them):
//!
//! - NATS users and permissions: only the relay publishes events; services use their own
//!   consumers; downstream systems read and never publish or delete;
//! - a forged message at the stream's tail, and a stream filled from another database, stop
//!   the relay loudly (`/ready` 503, `relay_stream_mismatch` 1) until `reset-stream`;
//! - an undecodable stored event is parked while everything else keeps projecting;
//! - a paused (SIGSTOP) relay leader is replaced, and publishes nothing when it resumes;
//! - a transaction held open makes the lag metrics grow, and everything arrives in order
//!   once it ends.

use std::time::Duration;

use crate::common::faults::*;
use crate::common::postgres::PostgresServer;
use crate::common::processes::{
    count_in_logs, nats_password, run_projectors_command, NatsServer, ProjectorsProcess, TempDir,
};
use crate::common::{global_log, insert_registration_copy, NATS_URL, PROJECTOR};
use async_nats::jetstream::{self, consumer::pull};
use futures::StreamExt;
use sqlx::PgPool;
use tokio::time::Instant;

/// Polls `check` until it holds, failing with `what` after `within`.
async fn eventually<F, Fut>(within: Duration, what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + within;
    while !check().await {
        assert!(Instant::now() < deadline, "{what} (within {within:?})");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn workload(first_sim: usize, sims: usize, commands: usize) -> Workload {
    Workload {
        first_sim,
        ..Workload::new(sims, 3, commands, Duration::ZERO)
    }
}

async fn connect_as(server: &NatsServer, user: &str) -> async_nats::Client {
    async_nats::ConnectOptions::with_user_and_password(user.into(), nats_password(user))
        .connect(server.url())
        .await
        .unwrap_or_else(|e| panic!("connect as {user}: {e}"))
}

fn short_timeout(client: async_nats::Client) -> jetstream::Context {
    jetstream::ContextBuilder::new()
        .timeout(Duration::from_millis(1500))
        .build(client)
}

#[sqlx::test(migrator = "eventstore::MIGRATOR")]
async fn nats_users_may_do_only_what_their_role_needs(pool: PgPool) {
    let env = FaultEnv::new(pool.clone(), "nats-users").await;
    let nats_dir = TempDir::new("projectors-nats-users");
    let nats = NatsServer::start_secured(nats_dir.path()).await;
    // auth.conf names the default stream, subjects and consumer.
    let mut spec = env.spec(&nats.url());
    spec.stream = "SIM_EVENTS".to_owned();
    spec.subject_prefix = "sim".to_owned();
    spec.projector = PROJECTOR.to_owned();
    spec.nats_user = Some(("projectors".into(), nats_password("projectors")));
    spec.relay_nats_user = Some(("relay".into(), nats_password("relay")));

    let scenario = async {
        let mut process = ProjectorsProcess::start(&spec, env.logs.path(), "run").await;
        workload(0, 10, 60).run(pool.clone()).await;
        // Watching needs no more than a downstream reader may do.
        let admin = jetstream::new(connect_as(&nats, "downstream").await);
        wait_for_pipeline(&admin, &pool, "SIM_EVENTS", Duration::from_secs(30)).await;
        let stored = events_stored(&pool).await as u64;

        // Nobody but the relay publishes events.
        let event = global_log(&pool).await.pop().unwrap();
        let subject = format!("sim.v1.{}.{}", event.iccid, event.event_type);
        for user in ["projectors", "connector", "command", "downstream"] {
            let js = short_timeout(connect_as(&nats, user).await);
            let published = async { js.publish(subject.clone(), "forged".into()).await?.await };
            assert!(published.await.is_err(), "{user} published on {subject}");
        }
        assert_eq!(stream_messages(&admin, "SIM_EVENTS").await, Some(stored));
        // Nor does anyone without credentials get in.
        assert!(
            async_nats::connect(nats.url()).await.is_err(),
            "anonymous connection accepted"
        );

        // Downstream reads with a consumer of its own, and touches nothing else.
        let downstream = short_timeout(connect_as(&nats, "downstream").await);
        let stream = downstream.get_stream("SIM_EVENTS").await.expect("stream info");
        let consumer = stream
            .create_consumer(pull::Config {
                durable_name: Some("billing-export".into()),
                ..Default::default()
            })
            .await
            .expect("downstream creates its own consumer");
        let mut batch = consumer.fetch().max_messages(5).messages().await.unwrap();
        let mut read = 0;
        while let Some(Ok(message)) = batch.next().await {
            message
                .ack()
                .await
                .expect("downstream acknowledges its own messages");
            read += 1;
        }
        assert_eq!(read, 5);
        assert!(
            stream.delete_consumer(PROJECTOR).await.is_err(),
            "deleted the projector's consumer"
        );
        assert!(
            downstream.delete_stream("SIM_EVENTS").await.is_err(),
            "deleted the stream"
        );
        let stolen = async {
            let theirs = stream.get_consumer::<pull::Config>(PROJECTOR).await?;
            let mut messages = theirs
                .fetch()
                .max_messages(1)
                .expires(Duration::from_millis(500))
                .messages()
                .await?;
            Ok::<_, async_nats::Error>(messages.next().await.is_some_and(|m| m.is_ok()))
        };
        assert!(
            !stolen.await.unwrap_or(false),
            "downstream pulled from the projector's consumer"
        );
        assert_eq!(stream_messages(&admin, "SIM_EVENTS").await, Some(stored));

        // The connector's user: its four request consumers, exactly as it creates them, and
        // the job wake-ups the command API's user publishes.
        let settings = sync_connector::consumers::ConsumerSettings {
            stream: "SIM_EVENTS".into(),
            subject_prefix: "sim".into(),
            name_prefix: "sync-connector".into(),
            ack_wait: Duration::from_secs(30),
        };
        let connector = short_timeout(connect_as(&nats, "connector").await);
        let requests = connector
            .get_stream("SIM_EVENTS")
            .await
            .expect("stream info as connector");
        for kind in sync_connector::RequestKind::ALL {
            let consumer = requests
                .get_or_create_consumer(
                    &settings.name(kind),
                    sync_connector::consumers::consumer_config(&settings, kind),
                )
                .await
                .unwrap_or_else(|e| panic!("the connector creates its {} consumer: {e}", kind.event_type()));
            let mut none = consumer
                .fetch()
                .max_messages(1)
                .expires(Duration::from_millis(300))
                .messages()
                .await
                .unwrap();
            assert!(none.next().await.is_none(), "no requests in this workload");
        }
        let command = connect_as(&nats, "command").await;
        let listener = connect_as(&nats, "connector").await;
        let mut wake_ups = listener.subscribe("sync.v1.jobs").await.unwrap();
        // The subscription is registered at the server before anything is published.
        listener.flush().await.unwrap();
        // Core NATS is at most once: published again until one arrives (a loaded machine
        // once took more than 5 s for the first), within 30 s.
        let woken = async {
            loop {
                command.publish("sync.v1.jobs", "job-1".into()).await.unwrap();
                command.flush().await.unwrap();
                if let Ok(message) = tokio::time::timeout(Duration::from_secs(1), wake_ups.next()).await {
                    return message;
                }
            }
        };
        let woken = tokio::time::timeout(Duration::from_secs(30), woken).await;
        assert_eq!(
            woken.ok().flatten().map(|m| m.payload.to_vec()),
            Some(b"job-1".to_vec())
        );
        // The connector may not read the projector's consumer.
        let theirs = async {
            let consumer = requests.get_consumer::<pull::Config>(PROJECTOR).await?;
            Ok::<_, async_nats::Error>(consumer.cached_info().num_pending)
        };
        assert!(
            theirs.await.is_err(),
            "the connector read the projector's consumer"
        );

        // The platform still works end to end as its own users.
        workload(10, 5, 30).run(pool.clone()).await;
        wait_for_pipeline(&admin, &pool, "SIM_EVENTS", Duration::from_secs(30)).await;
        process.kill_running();
        assert_stream_exactly_once(&admin, &pool, "SIM_EVENTS").await;
        assert_sims_equal_replay(&pool).await;
    };
    within(Duration::from_secs(120), scenario).await;
}

/// `/ready` 503 carrying the relay's reason, and `relay_stream_mismatch` 1.
async fn refuses_the_stream(process: &ProjectorsProcess) -> Option<String> {
    let (status, body) = process.ready().await?;
    let mismatch = process.metric("relay_stream_mismatch").await? == 1.0;
    (status == 503 && mismatch && body.contains("reset-stream")).then_some(body)
}

#[sqlx::test(migrator = "eventstore::MIGRATOR")]
async fn a_forged_tail_stops_the_relay_loudly_until_reset_stream(pool: PgPool) {
    let (env, _stream, js) = FaultEnv::on_shared_nats(pool.clone(), "forged-tail").await;
    let spec = env.spec(NATS_URL);

    let scenario = async {
        let mut process = ProjectorsProcess::start(&spec, env.logs.path(), "run").await;
        workload(0, 10, 100).run(pool.clone()).await;
        wait_for_pipeline(&js, &pool, &env.stream, Duration::from_secs(30)).await;

        // The stream's last message again, its body edited (a label nobody set).
        let mut stream = js.get_stream(&env.stream).await.unwrap();
        let last = stream.info().await.unwrap().state.last_sequence;
        let tail = stream.get_raw_message(last).await.unwrap();
        let mut body: serde_json::Value = serde_json::from_slice(&tail.payload).unwrap();
        body["payload"] = serde_json::json!({ "label": "forged" });
        let mut headers = async_nats::HeaderMap::new();
        for name in ["Sim-Position", "Sim-Transaction-Id", "Sim-Store-Id"] {
            headers.insert(name, tail.headers.get(name).unwrap().as_str());
        }
        headers.insert("Nats-Msg-Id", "forged-1");
        js.publish_with_headers(
            tail.subject.clone(),
            headers,
            serde_json::to_vec(&body).unwrap().into(),
        )
        .await
        .unwrap()
        .await
        .unwrap();

        // More commands: the relay's next publish is refused and it looks at the tail.
        let written = Instant::now();
        workload(10, 5, 30).run(pool.clone()).await;
        eventually(
            Duration::from_secs(10),
            "the relay did not refuse the stream",
            || async { refuses_the_stream(&process).await.is_some() },
        )
        .await;
        eprintln!("refused {:?} after the write", written.elapsed());
        let body = refuses_the_stream(&process).await.unwrap();
        assert!(body.contains(&format!("stream sequence {}", last + 1)), "{body}");
        // It stays refused, and says so once, not in a loop.
        tokio::time::sleep(Duration::from_secs(6)).await;
        assert!(refuses_the_stream(&process).await.is_some());
        let lines = count_in_logs(env.logs.path(), "does not match the event store");
        assert!((1..=3).contains(&lines), "{lines} log lines about the mismatch");
        assert_eq!(stream_messages(&js, &env.stream).await, Some(last + 1));
        // The forged body changed no read model.
        let forged: i64 = sqlx::query_scalar("SELECT count(*) FROM sims WHERE label = 'forged'")
            .fetch_one(&pool)
            .await
            .unwrap();
        assert_eq!(forged, 0);

        let (code, output) = run_projectors_command(&spec, &["relay", "verify"]);
        assert_eq!(code, 1, "verify reports the mismatch: {output}");
        let (code, output) = run_projectors_command(&spec, &["relay", "reset-stream", "--yes"]);
        assert_eq!(code, 0, "reset-stream: {output}");
        wait_for_pipeline(&js, &pool, &env.stream, Duration::from_secs(30)).await;
        eventually(Duration::from_secs(10), "/ready did not turn green", || async {
            process.ready().await.is_some_and(|(status, _)| status == 200)
        })
        .await;
        assert_eq!(process.metric("relay_stream_mismatch").await, Some(0.0));
        let (code, output) = run_projectors_command(&spec, &["relay", "verify", "--full"]);
        assert_eq!(code, 0, "the stream equals the store again: {output}");
        assert!(
            process
                .metric("pipeline_forged_messages_total")
                .await
                .unwrap_or(0.0)
                >= 1.0
        );
        process.kill_running();
        assert_nothing_missing_nothing_twice(&js, &pool, &env.stream).await;
    };
    within(Duration::from_secs(150), scenario).await;
}

#[sqlx::test(migrator = "eventstore::MIGRATOR")]
async fn a_stream_filled_from_another_database_is_refused(pool: PgPool) {
    let (env, _stream, js) = FaultEnv::on_shared_nats(pool.clone(), "other-database").await;
    let other = OtherDatabase::create(&pool).await;

    let scenario = async {
        let mut first = ProjectorsProcess::start(&env.spec(NATS_URL), env.logs.path(), "first").await;
        workload(0, 10, 100).run(pool.clone()).await;
        wait_for_relay(&js, &pool, &env.stream, Duration::from_secs(30)).await;

        // A second environment on the same NATS with the defaults: same stream, same consumer.
        let mut spec = env.spec(NATS_URL);
        spec.database_url = other.url.clone();
        spec.redis_prefix = format!("{}-second", env.redis_prefix);
        // Never ready: it refuses the stream from the start.
        let mut second = ProjectorsProcess::spawn(&spec, env.logs.path(), "second");
        workload(100, 5, 20).run(other.pool.clone()).await;
        eventually(
            Duration::from_secs(10),
            "the second relay did not refuse the stream",
            || async { refuses_the_stream(&second).await.is_some() },
        )
        .await;
        let body = refuses_the_stream(&second).await.unwrap();
        assert!(body.contains("not from this one"), "{body}");

        // The first platform goes on; the second applies nothing of the first's events.
        workload(10, 5, 30).run(pool.clone()).await;
        wait_for_pipeline(&js, &pool, &env.stream, Duration::from_secs(30)).await;
        let foreign: i64 = sqlx::query_scalar("SELECT count(*) FROM sims WHERE iccid = ANY($1)")
            .bind(workload(0, 15, 0).iccids())
            .fetch_one(&other.pool)
            .await
            .unwrap();
        assert_eq!(foreign, 0, "the second platform applied the first's events");
        let lines = count_in_logs(env.logs.path(), "does not match the event store");
        assert!((1..=3).contains(&lines), "{lines} log lines about the mismatch");
        let lines = count_in_logs(env.logs.path(), "does not match the stored event it names");
        assert!(
            (1..=4).contains(&lines),
            "{lines} log lines about foreign messages"
        );
        assert!(
            second
                .metric("pipeline_forged_messages_total")
                .await
                .unwrap_or(0.0)
                >= 1.0
        );
        first.assert_running();
        second.assert_running();
        first.kill();
        second.kill();
        assert_stream_exactly_once(&js, &pool, &env.stream).await;
        assert_sims_equal_replay(&pool).await;
    };
    within(Duration::from_secs(150), scenario).await;
    other.drop_database().await;
}

#[sqlx::test(migrator = "eventstore::MIGRATOR")]
async fn an_undecodable_event_is_parked_while_1000_later_commands_reach_the_read_models(pool: PgPool) {
    let (env, _stream, js) = FaultEnv::on_shared_nats(pool.clone(), "parked").await;

    let scenario = async {
        let mut process = ProjectorsProcess::start(&env.spec(NATS_URL), env.logs.path(), "run").await;
        workload(0, 1, 5).run(pool.clone()).await;
        let poisoned = Workload::iccid(0);
        // As a newer command-service would write it during a rolling deploy.
        crate::common::append_raw_sim_event(
            &pool,
            &poisoned,
            "SimTeleported",
            "2",
            r#"{"to": "mars"}"#,
            r#"{"actor": "user:future"}"#,
        )
        .await;
        let later = workload(1, 40, 1000);
        later.clone().run(pool.clone()).await;
        wait_for_pipeline(&js, &pool, &env.stream, Duration::from_secs(60)).await;

        assert_eq!(process.metric("projector_parked_events").await, Some(1.0));
        let parked: Vec<(String, String)> =
            sqlx::query_as("SELECT aggregate_id, event_type FROM parked_events")
                .fetch_all(&pool)
                .await
                .unwrap();
        assert_eq!(parked, vec![(poisoned.clone(), "SimTeleported".to_owned())]);
        let row = readmodel::load_sim(&pool, &poisoned).await.unwrap().unwrap();
        assert_eq!(row.projection, "parked");
        let log = global_log(&pool).await;
        for iccid in later.iccids() {
            let events: Vec<_> = log.iter().filter(|e| e.iccid == iccid).cloned().collect();
            assert_eq!(
                readmodel::load_sim(&pool, &iccid).await.unwrap(),
                readmodel::sim_view_as_of(&events),
                "{iccid}"
            );
        }
        process.kill_running();
        assert_stream_exactly_once(&js, &pool, &env.stream).await;
    };
    within(Duration::from_secs(180), scenario).await;
}

/// The documented bound for a standby to lead after the leader stops answering
/// (docs/relay.md): the lock session's idle timeout, the standby's retry, a sync.
const TAKEOVER_BOUND: Duration = Duration::from_secs(30);

#[sqlx::test(migrator = "eventstore::MIGRATOR")]
async fn a_paused_relay_leader_is_replaced_and_publishes_nothing_when_it_resumes(pool: PgPool) {
    let (env, _stream, js) = FaultEnv::on_shared_nats(pool.clone(), "paused-leader").await;
    let spec = env.spec(NATS_URL);

    let scenario = async {
        let mut a = ProjectorsProcess::start(&spec, env.logs.path(), "a").await;
        let mut b = ProjectorsProcess::start(&spec, env.logs.path(), "b").await;
        let writing = tokio::spawn(
            Workload {
                pause: Duration::from_millis(20),
                ..workload(0, 20, 900)
            }
            .run(pool.clone()),
        );
        eventually(Duration::from_secs(20), "no relay leads", || async {
            a.is_relay_leader().await == Some(true) || b.is_relay_leader().await == Some(true)
        })
        .await;
        let (leader, standby) = if a.is_relay_leader().await == Some(true) {
            (&mut a, &mut b)
        } else {
            (&mut b, &mut a)
        };
        leader.pause();
        let paused = Instant::now();
        eventually(TAKEOVER_BOUND, "the standby did not take over", || async {
            standby.is_relay_leader().await == Some(true)
        })
        .await;
        let takeover = paused.elapsed();
        eprintln!("standby leads {takeover:?} after the leader was paused");
        // Events keep flowing through the new leader.
        let published = stream_messages(&js, &env.stream).await.unwrap();
        eventually(
            Duration::from_secs(10),
            "the new leader publishes nothing",
            || async { stream_messages(&js, &env.stream).await.unwrap_or(0) > published },
        )
        .await;

        leader.resume();
        eventually(
            Duration::from_secs(15),
            "the resumed relay still claims to lead",
            || async { leader.is_relay_leader().await == Some(false) },
        )
        .await;
        let log = leader.log_tail(20_000);
        let lost = log.matches("relay lock lost").count();
        let refused = log.matches("refused a publish").count();
        eprintln!("the resumed relay: {lost} lock-lost lines, {refused} publishes refused by NATS");
        assert!(
            lost + refused >= 1,
            "the resumed relay gave no sign of stepping down:\n{log}"
        );
        writing.await.unwrap();
        wait_for_pipeline(&js, &pool, &env.stream, Duration::from_secs(40)).await;
        leader.assert_running();
        standby.assert_running();
        leader.kill();
        standby.kill();
        assert_nothing_missing_nothing_twice(&js, &pool, &env.stream).await;
    };
    within(Duration::from_secs(180), scenario).await;
}

/// On a private server (transaction ids are cluster-wide: on the shared one, a transaction
/// held for a minute would stall every other test's relay).
#[tokio::test]
async fn a_transaction_held_open_makes_the_lag_grow_and_everything_arrives_in_order() {
    let (_dir, _postgres, url) =
        PostgresServer::start_with_database("projectors-long-transaction", "longtx").await;
    let pool = PgPool::connect(&url).await.unwrap();
    let (env, _stream, js) = FaultEnv::on_shared_nats(pool.clone(), "long-transaction").await;

    let scenario = async {
        let mut process = ProjectorsProcess::start(&env.spec(NATS_URL), env.logs.path(), "run").await;
        workload(0, 5, 20).run(pool.clone()).await;
        wait_for_relay(&js, &pool, &env.stream, Duration::from_secs(30)).await;

        // A writer's transaction that stays open: it has written an event and holds the
        // horizon back, so nothing committed after it can be published yet.
        let template = global_log(&pool)
            .await
            .into_iter()
            .find(|e| e.event_type == "SimRegistered")
            .unwrap();
        let mut held = pool.begin().await.unwrap();
        insert_registration_copy(&mut *held, &template, "8988303000999999999").await;
        let opened = Instant::now();
        let writing = tokio::spawn(
            Workload {
                pause: Duration::from_millis(50),
                ..workload(5, 10, 300)
            }
            .run(pool.clone()),
        );
        tokio::time::sleep(Duration::from_secs(if std::env::var("DEBUG_DUMP").is_ok() {
            10
        } else {
            45
        }))
        .await;
        let relay_lag = process.metric("relay_lag_seconds").await.unwrap();
        let holder = process.metric("relay_horizon_holder_age_seconds").await.unwrap();
        let projection_lag = process.metric("projection_lag_seconds").await.unwrap();
        let pending = process.metric("relay_lag_events").await.unwrap();
        eprintln!("after 45 s: relay lag {relay_lag} s ({pending} events), holder {holder} s, projection lag {projection_lag} s");
        if std::env::var("DEBUG_DUMP").is_err() {
            assert!(holder >= 40.0, "horizon holder age {holder}");
            assert!(relay_lag >= 30.0, "relay lag {relay_lag}");
            assert!(projection_lag >= 30.0, "projection lag {projection_lag}");
            assert!(pending >= 100.0, "unpublished events {pending}");
        }
        tokio::time::sleep(Duration::from_secs(60).saturating_sub(opened.elapsed())).await;
        held.commit().await.unwrap();
        writing.await.unwrap();
        if std::env::var("DEBUG_DUMP").is_ok() {
            tokio::time::sleep(Duration::from_secs(5)).await;
            let mut stream = js.get_stream(&env.stream).await.unwrap();
            let state = stream.info().await.unwrap().state.clone();
            for seq in state.first_sequence..=state.last_sequence {
                let m = stream.get_raw_message(seq).await.unwrap();
                eprintln!(
                    "DUMP {seq} tx={} pos={} id={}",
                    m.headers
                        .get("Sim-Transaction-Id")
                        .map(|v| v.as_str())
                        .unwrap_or("-"),
                    m.headers.get("Sim-Position").map(|v| v.as_str()).unwrap_or("-"),
                    m.headers.get("Nats-Msg-Id").map(|v| v.as_str()).unwrap_or("-")
                );
            }
        }

        wait_for_pipeline(&js, &pool, &env.stream, Duration::from_secs(30)).await;
        eventually(Duration::from_secs(5), "the lag did not fall back", || async {
            process.metric("relay_lag_seconds").await == Some(0.0)
                && process.metric("projection_lag_seconds").await == Some(0.0)
        })
        .await;
        process.kill_running();
        // In order: the held transaction's event comes before everything committed after it.
        assert_nothing_missing_nothing_twice(&js, &pool, &env.stream).await;
    };
    within(Duration::from_secs(200), scenario).await;
}

/// Transaction ids are ordered as numbers, never as text: on a fresh server they pass 999 →
/// 1000 within minutes (and on every server, each power of ten in turn). Reading the log in
/// small batches across such a step loses nothing and keeps the order.
#[tokio::test]
async fn the_global_log_orders_transaction_ids_as_numbers_across_a_new_digit() {
    let (_dir, _postgres, url) = PostgresServer::start_with_database("projectors-xid-digits", "digits").await;
    let pool = PgPool::connect(&url).await.unwrap();
    let current = || async {
        let xid: String = sqlx::query_scalar("SELECT pg_current_xact_id()::text")
            .fetch_one(&pool)
            .await
            .unwrap();
        xid.parse::<u64>().unwrap()
    };
    let digits = |n: u64| n.to_string().len();
    let start = current().await;
    let boundary = 10u64.pow(digits(start) as u32);
    assert!(boundary - start < 100_000, "a fresh server starts low ({start})");
    while current().await < boundary - 10 {}
    for n in 0..30 {
        sqlx::query(
            "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata, iccid) \
             VALUES ('test', 'a', $1, 'Happened', '1', '{}', '{}', '8988303000000000001')",
        )
        .bind(n + 1)
        .execute(&pool)
        .await
        .unwrap();
    }
    let log = eventstore::GlobalLog::new(pool.clone());
    let mut cursor = eventstore::LogCursor::START;
    let mut read = Vec::new();
    loop {
        let batch = log.read_after(cursor, 7).await.unwrap();
        let Some(last) = batch.last() else { break };
        cursor = eventstore::LogCursor::after(last);
        read.extend(batch.into_iter().map(|e| (e.transaction_id.unwrap(), e.position)));
    }
    assert_eq!(read.len(), 30, "every event read: {read:?}");
    assert!(read.windows(2).all(|w| w[0] < w[1]), "in numeric order: {read:?}");
    assert!(
        digits(read[0].0) < digits(read[29].0),
        "the ids gained a digit: {read:?}"
    );
}

/// What one keyed command got, attempt by attempt (a retry reuses its key).
#[derive(Debug, Clone)]
struct Attempts {
    key: String,
    statuses: Vec<Option<u16>>,
    /// The error codes of its 503 answers.
    unavailable_codes: Vec<String>,
    /// The accepted answer's command id.
    command_id: Option<String>,
}

/// Registers `sims` SIMs and relabels each `labels` times, from `clients` concurrent clients;
/// every command carries an Idempotency-Key and is retried with it on 503 or a lost answer.
async fn keyed_workload(
    apis: &crate::common::apis::Apis,
    clients: usize,
    sims: usize,
    labels: usize,
) -> Vec<Attempts> {
    let mut tasks = Vec::new();
    for client in 0..clients {
        let apis = apis.clone();
        tasks.push(tokio::spawn(async move {
            let mut history = Vec::new();
            for n in (client..sims).step_by(clients) {
                let iccid = format!("8988303000{n:09}");
                let mut commands = vec![(
                    reqwest::Method::POST,
                    "/sims".to_owned(),
                    serde_json::json!({"iccid": iccid, "imsi": "901405100000001", "label": "new"}),
                )];
                for l in 0..labels {
                    commands.push((
                        reqwest::Method::PATCH,
                        format!("/sims/{iccid}"),
                        serde_json::json!({"label": format!("{iccid}-{l}")}),
                    ));
                }
                for (i, (method, path, body)) in commands.into_iter().enumerate() {
                    let key = format!("{iccid}-{i}");
                    let mut attempts = Attempts {
                        key: key.clone(),
                        statuses: Vec::new(),
                        unavailable_codes: Vec::new(),
                        command_id: None,
                    };
                    let deadline = Instant::now() + Duration::from_secs(90);
                    loop {
                        let answer = apis
                            .keyed_command(method.clone(), &path, body.clone(), &key)
                            .await;
                        attempts.statuses.push(answer.as_ref().map(|(s, _)| s.as_u16()));
                        match answer {
                            Some((status, body)) if status.is_success() => {
                                attempts.command_id = body["command_id"].as_str().map(str::to_owned);
                                break;
                            }
                            Some((status, _)) if status.as_u16() != 503 => break,
                            Some((_, body)) => attempts
                                .unavailable_codes
                                .push(body["error"]["code"].as_str().unwrap_or("").to_owned()),
                            None => {}
                        }
                        assert!(
                            Instant::now() < deadline,
                            "{key} never got through: {:?}",
                            attempts.statuses
                        );
                        tokio::time::sleep(Duration::from_millis(200)).await;
                    }
                    history.push(attempts);
                    tokio::time::sleep(Duration::from_millis(150)).await;
                }
            }
            history
        }));
    }
    let mut all = Vec::new();
    for task in tasks {
        all.extend(task.await.unwrap());
    }
    all
}

/// The fault matrix's HTTP half: no 500 anywhere, every command finally accepted, every
/// accepted command stored exactly once (one idempotency record, its events once each).
async fn assert_acknowledged_once(pool: &PgPool, history: &[Attempts]) {
    let statuses: Vec<u16> = history
        .iter()
        .flat_map(|a| a.statuses.iter().flatten().copied())
        .collect();
    assert!(!statuses.contains(&500), "a 500 was answered");
    assert!(
        statuses.iter().all(|s| (200..300).contains(s) || *s == 503),
        "only 2xx and 503 expected: {:?}",
        statuses
            .iter()
            .filter(|s| !(200..300).contains(*s))
            .collect::<Vec<_>>()
    );
    let unavailable = statuses.iter().filter(|s| **s == 503).count();
    let codes: std::collections::BTreeSet<&str> = history
        .iter()
        .flat_map(|a| a.unavailable_codes.iter().map(String::as_str))
        .collect();
    assert!(
        codes.iter().all(|c| *c == "DATABASE_UNAVAILABLE"),
        "503 codes: {codes:?}"
    );
    eprintln!(
        "{} commands, {} answers, {unavailable} of them 503",
        history.len(),
        statuses.len()
    );
    for attempts in history {
        let command_id = attempts
            .command_id
            .as_deref()
            .unwrap_or_else(|| panic!("{} not accepted", attempts.key));
        let records: i64 =
            sqlx::query_scalar("SELECT count(*) FROM command_idempotency WHERE idempotency_key = $1")
                .bind(&attempts.key)
                .fetch_one(pool)
                .await
                .unwrap();
        assert_eq!(records, 1, "{}: idempotency records", attempts.key);
        // A relabel stores the label and the request to carry it out at 1NCE: each once.
        let (events, distinct): (i64, i64) = sqlx::query_as(
            "SELECT count(*), count(DISTINCT event_type) FROM events WHERE metadata->>'command_id' = $1",
        )
        .bind(command_id)
        .fetch_one(pool)
        .await
        .unwrap();
        assert!(events >= 1, "{}: its command stored no event", attempts.key);
        assert_eq!(
            events, distinct,
            "{}: an event of its command stored twice",
            attempts.key
        );
    }
    // Per aggregate, sequences 1..n without a hole.
    let holes: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM (SELECT aggregate_type, aggregate_id, count(*) AS n, max(sequence) AS last \
         FROM events GROUP BY 1, 2) a WHERE n <> last",
    )
    .fetch_one(pool)
    .await
    .unwrap();
    assert_eq!(holes, 0, "aggregates with holes in their sequences");
}

/// Starts `postgres` again after `fault`, then waits until `ready` holds: 15 s at the most.
async fn boot_then_wait_ready<F, Fut>(postgres: &mut PostgresServer, fault: &str, ready: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    postgres.boot().await;
    let back = Instant::now();
    eventually(
        Duration::from_secs(15),
        &format!("not ready within 15 s of {fault}"),
        ready,
    )
    .await;
    eprintln!("ready {:?} after {fault}", back.elapsed());
}

/// Postgres stopped `-m immediate` and started again, then its postmaster killed and started
/// again, each time down for 6 s, during a keyed workload: the
/// APIs answer 2xx or 503, never 500; every acknowledged command is stored exactly once; every
/// `/ready` is green again within 15 s of Postgres being back; the pipeline ends consistent.
#[tokio::test]
async fn postgres_restarts_answer_503_never_500_and_lose_no_acknowledged_command() {
    let (_dir, mut postgres, url) =
        PostgresServer::start_with_database("projectors-postgres-restart", "restarts").await;
    let pool = platform::db::connect(&url, 10).await.unwrap();
    let (env, _stream, js) = FaultEnv::on_shared_nats(pool.clone(), "postgres-restart").await;

    let scenario = async {
        let mut process = ProjectorsProcess::start(&env.spec(NATS_URL), env.logs.path(), "run").await;
        let apis = crate::common::apis::Apis::start(
            &pool,
            crate::common::REDIS_URL,
            &env.redis_prefix,
            Duration::from_secs(5),
        )
        .await;
        let workload = {
            let apis = apis.clone();
            tokio::spawn(async move { keyed_workload(&apis, 8, 120, 6).await })
        };
        let all_ready =
            || async { apis.ready().await && process.ready().await.is_some_and(|(s, _)| s == 200) };

        let (status, created) = apis
            .command(
                reqwest::Method::POST,
                "/auth/api-keys",
                Some(serde_json::json!({"name": "ops", "role": "operator"})),
            )
            .await;
        assert_eq!(status.as_u16(), 201, "{created}");
        let api_key = created["key"].as_str().unwrap().to_owned();

        // Down for longer than the pools wait for a connection (5 s): requests meet it.
        tokio::time::sleep(Duration::from_millis(1500)).await;
        postgres.stop_immediate();
        // The API-key check reads the database too: 503, not 500, on both APIs.
        for url in [
            format!("http://{}/api/v1/sims/8988303000000000001/sync", apis.commands),
            format!("http://{}/api/v1/sims", apis.queries),
        ] {
            let request = if url.contains("/sync") {
                apis.client.post(&url)
            } else {
                apis.client.get(&url)
            };
            let response = request.header("x-api-key", &api_key).send().await.unwrap();
            assert_eq!(response.status().as_u16(), 503, "{url}");
            assert!(response.headers().contains_key("retry-after"), "{url}");
            let body: serde_json::Value = response.json().await.unwrap();
            assert_eq!(body["error"]["code"], "DATABASE_UNAVAILABLE", "{url}: {body}");
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
        boot_then_wait_ready(&mut postgres, "an immediate restart", all_ready).await;

        tokio::time::sleep(Duration::from_millis(1500)).await;
        postgres.kill_postmaster();
        tokio::time::sleep(Duration::from_secs(6)).await;
        boot_then_wait_ready(&mut postgres, "a postmaster crash", all_ready).await;

        let history = workload.await.unwrap();
        assert_acknowledged_once(&pool, &history).await;
        wait_for_pipeline(&js, &pool, &env.stream, Duration::from_secs(40)).await;
        process.kill_running();
        assert_stream_exactly_once(&js, &pool, &env.stream).await;
        assert_sims_equal_replay(&pool).await;
        assert_rebuild_equals_live(&pool).await;
    };
    within(Duration::from_secs(240), scenario).await;
}

/// The connector's liveness lock (its instance id, held for the process's life so that other
/// instances do not take over its provider calls) survives Postgres restarting: it lives on a
/// connection of its own, which is pinged and made again, and the lock taken back.
#[tokio::test]
async fn the_connectors_liveness_lock_is_taken_again_after_postgres_restarts() {
    let (_dir, mut postgres, url) =
        PostgresServer::start_with_database("projectors-connector-lock", "connector").await;
    let pool = platform::db::connect(&url, 5).await.unwrap();
    let instance = sync_connector::Instance::start(&pool).await.unwrap();
    let id = instance.id;
    assert!(instance.is_held());
    assert!(sync_connector::dispatch::is_alive(&pool, instance.id)
        .await
        .unwrap());

    // The restart ends every session, the lock's with it: until the keeper takes it again,
    // another instance would see this one as dead.
    postgres.restart_immediate().await;
    let back = Instant::now();
    eventually(
        Duration::from_secs(15),
        "the lock was not taken again",
        || async {
            instance.is_held()
                && sync_connector::dispatch::is_alive(&pool, instance.id)
                    .await
                    .unwrap_or(false)
        },
    )
    .await;
    eprintln!(
        "liveness lock held again {:?} after Postgres was back",
        back.elapsed()
    );
    drop(instance);
    eventually(
        Duration::from_secs(5),
        "dropping the instance did not release its lock",
        || async {
            !sync_connector::dispatch::is_alive(&pool, id)
                .await
                .unwrap_or(true)
        },
    )
    .await;
}
