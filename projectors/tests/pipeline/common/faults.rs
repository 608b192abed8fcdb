//! The fault tests' environment, workload and end-state checks: what must hold after any kill,
//! restart or flush — every stored event on the stream exactly once and in log order, every
//! event applied once, the read models equal to a fresh rebuild and to the replay of the log.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Duration;

use async_nats::jetstream::{self, consumer::pull};
use domain::ids::QuotaKind;
use domain::{QuotaCommand, SimCommand};
use eventstore::StoredEvent;
use projectors::{rebuild, RebuildOptions};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use readmodel::{load_sim, sim_view_as_of, Cache, CacheConfig};
use sqlx::PgPool;
use tokio::time::Instant;

use super::processes::{ProjectorsSpec, TempDir};
use super::{at, data_bytes_total, global_log, register, snapshot, Writer, NATS_URL, PROJECTOR, REDIS_URL};

/// Names of its own for one test (stream, subjects, Redis keys), its database's URL for
/// child processes, and a directory for their logs.
pub struct FaultEnv {
    pub database_url: String,
    pub stream: String,
    pub prefix: String,
    pub redis_prefix: String,
    pub logs: TempDir,
}

impl FaultEnv {
    /// For the database `pool` is connected to (the test's, or one on a private server).
    pub async fn new(pool: PgPool, label: &str) -> Self {
        let database_url = testkit::database_url(&pool).await;
        let id = uuid::Uuid::new_v4().simple().to_string();
        Self {
            database_url,
            stream: format!("TEST_FAULTS_{id}"),
            prefix: format!("tf{id}"),
            redis_prefix: format!("test-faults-{id}"),
            logs: TempDir::new(&format!("projectors-{label}")),
        }
    }

    /// [`FaultEnv::new`] for a test on the shared NATS server: with the guard that deletes its
    /// stream there, and a JetStream context to watch it.
    pub async fn on_shared_nats(pool: PgPool, label: &str) -> (Self, SharedStream, jetstream::Context) {
        let (env, stream) = Self::with_shared_stream(pool, label).await;
        let js = connect_jetstream(NATS_URL).await;
        (env, stream, js)
    }

    /// [`FaultEnv::new`] with the guard that deletes its stream from the shared NATS server.
    pub async fn with_shared_stream(pool: PgPool, label: &str) -> (Self, SharedStream) {
        let env = Self::new(pool, label).await;
        let stream = SharedStream(env.stream.clone());
        (env, stream)
    }

    /// A projectors child on this test's database, stream and prefixes.
    pub fn spec(&self, nats_url: &str) -> ProjectorsSpec {
        ProjectorsSpec {
            database_url: self.database_url.clone(),
            nats_url: nats_url.to_owned(),
            redis_url: REDIS_URL.to_owned(),
            stream: self.stream.clone(),
            subject_prefix: self.prefix.clone(),
            redis_prefix: self.redis_prefix.clone(),
            projector: PROJECTOR.to_owned(),
            relay: true,
            ack_wait_secs: 2,
            nats_user: None,
            relay_nats_user: None,
            partitions: 1,
        }
    }

    pub async fn cache(&self) -> Cache {
        Cache::connect(CacheConfig::new(REDIS_URL, &self.redis_prefix)).await
    }
}

/// Deletes the test's stream from the shared NATS server when dropped, also after a panic
/// (the relay in the child created it; nothing else would remove it).
pub struct SharedStream(pub String);

impl Drop for SharedStream {
    fn drop(&mut self) {
        let stream = self.0.clone();
        // Drop cannot await; a thread with its own runtime does the delete, bounded in time.
        let _ = std::thread::spawn(move || {
            let Ok(runtime) = tokio::runtime::Builder::new_current_thread().enable_all().build() else {
                return;
            };
            runtime.block_on(async {
                let _ = tokio::time::timeout(Duration::from_secs(5), async {
                    if let Ok(client) = async_nats::connect(NATS_URL).await {
                        let _ = jetstream::new(client).delete_stream(&stream).await;
                    }
                })
                .await;
            });
        })
        .join();
    }
}

/// A second database on the test's server, migrated, dropped by [`OtherDatabase::drop_database`].
pub struct OtherDatabase {
    pub pool: PgPool,
    pub url: String,
    admin: PgPool,
    name: String,
}

impl OtherDatabase {
    pub async fn create(admin: &PgPool) -> Self {
        let name = format!("faults_other_{}", uuid::Uuid::new_v4().simple());
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(admin)
            .await
            .unwrap();
        let url = {
            let own = testkit::database_url(admin).await;
            let server = own.rsplit_once('/').map(|(server, _)| server).unwrap_or(&own);
            format!("{server}/{name}")
        };
        let pool = PgPool::connect(&url).await.unwrap();
        eventstore::migrate(&pool).await.unwrap();
        Self {
            pool,
            url,
            admin: admin.clone(),
            name,
        }
    }

    pub async fn drop_database(self) {
        self.pool.close().await;
        let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name))
            .execute(&self.admin)
            .await;
    }
}

pub async fn connect_jetstream(url: &str) -> jetstream::Context {
    let client = async_nats::ConnectOptions::new()
        .retry_on_initial_connect()
        .connect(url)
        .await
        .expect("connect to NATS");
    jetstream::new(client)
}

/// A steady stream of commands straight through the event store, from several concurrent
/// writers (so transactions commit out of position order, as in production): per SIM a
/// registration and a data quota, then label and tag changes, usage reports (cumulative
/// per day, so every report carries a delta) and quota consumption.
#[derive(Debug, Clone)]
pub struct Workload {
    /// SIMs `first_sim .. first_sim + sims` (each registered by this workload).
    pub first_sim: usize,
    pub sims: usize,
    pub writers: usize,
    pub commands: usize,
    /// Each writer's pause between commands: spreads the writes over time.
    pub pause: Duration,
    pub seed: u64,
}

impl Workload {
    /// SIMs `0 .. sims`, `commands` from `writers` writers pausing `pause`, a random seed.
    pub fn new(sims: usize, writers: usize, commands: usize, pause: Duration) -> Self {
        Self {
            first_sim: 0,
            sims,
            writers,
            commands,
            pause,
            seed: rand::random(),
        }
    }

    pub fn iccid(n: usize) -> String {
        format!("89883030003{n:08}")
    }

    pub fn iccids(&self) -> Vec<String> {
        (self.first_sim..self.first_sim + self.sims)
            .map(Self::iccid)
            .collect()
    }

    /// Writes everything; returns the number of events stored.
    pub async fn run(self, pool: PgPool) -> usize {
        let mut writers = tokio::task::JoinSet::new();
        for writer in 0..self.writers {
            let pool = pool.clone();
            let workload = self.clone();
            writers.spawn(async move { workload.write(writer, pool).await });
        }
        let mut events = 0;
        while let Some(done) = writers.join_next().await {
            events += done.expect("a writer panicked");
        }
        events
    }

    async fn write(self, writer: usize, pool: PgPool) -> usize {
        let w = Writer::new(&pool);
        let mut rng = StdRng::seed_from_u64(self.seed.wrapping_add(writer as u64));
        let mine: Vec<usize> = (self.first_sim + writer..self.first_sim + self.sims)
            .step_by(self.writers)
            .collect();
        if mine.is_empty() {
            return 0;
        }
        let mut events = 0;
        let mut remaining: HashMap<usize, u64> = HashMap::new();
        let mut usage: HashMap<(usize, u32), u64> = HashMap::new();
        for &n in &mine {
            let iccid = Self::iccid(n);
            events += w.sim(&iccid, register(&iccid, "901405100000001", "new")).await;
            events += w.assign_data_quota(&iccid, 10_000_000).await;
            remaining.insert(n, 10_000_000);
        }
        let share = self.commands / self.writers;
        for i in 0..share {
            let n = mine[rng.random_range(0..mine.len())];
            let iccid = Self::iccid(n);
            events += match rng.random_range(0..4) {
                0 => {
                    let label = Some(Some(format!("w{writer}-{i}")));
                    w.sim(&iccid, SimCommand::UpdateDetails { label, tags: None })
                        .await
                }
                1 => {
                    let tags = Some(vec![format!("t{}", rng.random_range(0..1000))]);
                    w.sim(&iccid, SimCommand::UpdateDetails { label: None, tags })
                        .await
                }
                2 => {
                    let day = rng.random_range(1..=3);
                    let total = usage.entry((n, day)).or_insert(0);
                    *total += rng.random_range(1..10_000);
                    let command = SimCommand::RecordUsage {
                        period_start: at(day, 0, 0),
                        period_end: at(day + 1, 0, 0),
                        data_bytes: *total,
                        sms_mo: 0,
                        sms_mt: 0,
                    };
                    w.sim_at(&iccid, command, at(day, 12, rng.random_range(0..60)))
                        .await
                }
                _ => {
                    let left = remaining.get_mut(&n).unwrap();
                    *left -= rng.random_range(1..1_000);
                    let command = QuotaCommand::RecordConsumption {
                        remaining: *left,
                        at: at(2, 12, 0),
                    };
                    w.quota(&iccid, QuotaKind::Data, command).await
                }
            };
            if !self.pause.is_zero() {
                tokio::time::sleep(self.pause).await;
            }
        }
        events
    }
}

/// One label change for every SIM, as fast as the writers go: the last event each SIM gets
/// for a while, so a cache entry a kill left stale stays visible.
pub async fn relabel_all(pool: &PgPool, iccids: &[String], label: &str, writers: usize) {
    let mut tasks = tokio::task::JoinSet::new();
    for writer in 0..writers {
        let pool = pool.clone();
        let mine: Vec<String> = iccids.iter().skip(writer).step_by(writers).cloned().collect();
        let label = label.to_owned();
        tasks.spawn(async move {
            let w = Writer::new(&pool);
            for iccid in mine {
                let label = Some(Some(format!("{label} {iccid}")));
                w.sim(&iccid, SimCommand::UpdateDetails { label, tags: None })
                    .await;
            }
        });
    }
    while let Some(done) = tasks.join_next().await {
        done.expect("a writer panicked");
    }
}

/// How many events the `events` table holds.
pub async fn events_stored(pool: &PgPool) -> usize {
    let count: i64 = sqlx::query_scalar("SELECT count(*) FROM events")
        .fetch_one(pool)
        .await
        .unwrap();
    count as usize
}

/// The stream's message count, `None` while the server does not answer.
pub async fn stream_messages(js: &jetstream::Context, stream: &str) -> Option<u64> {
    let mut stream = js.get_stream(stream).await.ok()?;
    Some(stream.info().await.ok()?.state.messages)
}

/// Until the stream holds one message per stored event. More messages than events is a
/// duplicate and fails at once (the stream never shrinks while this waits).
pub async fn wait_for_relay(js: &jetstream::Context, pool: &PgPool, stream: &str, within: Duration) {
    let expected = events_stored(pool).await as u64;
    let deadline = Instant::now() + within;
    let mut seen = None;
    loop {
        let query = tokio::time::timeout(Duration::from_secs(3), stream_messages(js, stream));
        if let Ok(messages) = query.await {
            seen = messages.or(seen);
        }
        if let Some(messages) = seen {
            assert!(
                messages <= expected,
                "the stream holds {messages} messages for {expected} events: a duplicate"
            );
            if messages == expected {
                return;
            }
        }
        assert!(
            Instant::now() < deadline,
            "the relay did not publish every event within {within:?}: {seen:?} of {expected}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// [`wait_for_relay`], then [`wait_for_projection`], each `within`.
pub async fn wait_for_pipeline(js: &jetstream::Context, pool: &PgPool, stream: &str, within: Duration) {
    wait_for_relay(js, pool, stream, within).await;
    wait_for_projection(js, pool, stream, within).await;
}

/// Runs a fault test's `scenario`; the test fails ("the test timed out") after `limit`.
pub async fn within(limit: Duration, scenario: impl std::future::Future<Output = ()>) {
    tokio::time::timeout(limit, scenario)
        .await
        .expect("the test timed out");
}

/// The checkpoint rows of the projector's current layout (one unless partitioned).
pub async fn partition_names(pool: &PgPool) -> Vec<String> {
    sqlx::query_scalar("SELECT projection_partition_names($1)")
        .bind(PROJECTOR)
        .fetch_all(pool)
        .await
        .unwrap()
}

/// Until every partition's checkpoint (one unless partitioned) is the log's last event and
/// each one's consumer has nothing pending or unacknowledged.
pub async fn wait_for_projection(js: &jetstream::Context, pool: &PgPool, stream: &str, within: Duration) {
    let last = global_log(pool).await.last().map(|e| e.position).unwrap_or(0);
    let deadline = Instant::now() + within;
    loop {
        let names = partition_names(pool).await;
        let checkpoints: Vec<i64> =
            sqlx::query_scalar("SELECT position FROM projection_checkpoints WHERE projector = ANY($1)")
                .bind(&names)
                .fetch_all(pool)
                .await
                .unwrap();
        let mut consumers = Vec::new();
        for name in &names {
            let consumer = tokio::time::timeout(Duration::from_secs(3), async {
                let mut consumer = js
                    .get_stream(stream)
                    .await
                    .ok()?
                    .get_consumer::<pull::Config>(name)
                    .await
                    .ok()?;
                let info = consumer.info().await.ok()?;
                Some((info.num_pending, info.num_ack_pending))
            })
            .await
            .ok()
            .flatten();
            consumers.push(consumer);
        }
        let caught_up = checkpoints.len() == names.len() && checkpoints.iter().all(|c| *c == last);
        if caught_up && consumers.iter().all(|c| *c == Some((0, 0))) {
            return;
        }
        let state =
            format!("checkpoints {checkpoints:?} of {last}, consumers (pending, unacked) {consumers:?}");
        assert!(
            Instant::now() < deadline,
            "the projector did not catch up within {within:?}: {state}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Every message's `Nats-Msg-Id`, in stream order.
pub async fn stream_message_ids(js: &jetstream::Context, stream: &str) -> Vec<String> {
    let mut stream = js.get_stream(stream).await.expect("the stream exists");
    let state = stream.info().await.unwrap().state.clone();
    let mut ids = Vec::with_capacity(state.messages as usize);
    for sequence in state.first_sequence..=state.last_sequence {
        if state.messages == 0 {
            break;
        }
        let message = stream
            .get_raw_message(sequence)
            .await
            .unwrap_or_else(|e| panic!("stream sequence {sequence} missing: {e}"));
        let id = message.headers.get("Nats-Msg-Id").expect("a message id");
        ids.push(id.to_string());
    }
    ids
}

fn message_id(event: &StoredEvent) -> String {
    format!(
        "{}:{}:{}",
        event.aggregate_type, event.aggregate_id, event.sequence
    )
}

/// The stream holds every stored event exactly once, in the global log's order, without gaps.
pub async fn assert_stream_exactly_once(js: &jetstream::Context, pool: &PgPool, stream: &str) {
    let log: Vec<String> = global_log(pool).await.iter().map(message_id).collect();
    let ids = stream_message_ids(js, stream).await;
    let unique: BTreeSet<&String> = ids.iter().collect();
    assert_eq!(
        unique.len(),
        ids.len(),
        "a message id appears twice on the stream"
    );
    let expected: BTreeSet<&String> = log.iter().collect();
    let missing: Vec<&&String> = expected.difference(&unique).take(5).collect();
    assert!(missing.is_empty(), "events missing from the stream: {missing:?}…");
    assert_eq!(ids.len(), log.len(), "one message per stored event");
    assert!(ids == log, "the stream is not in the global log's order");
}

/// The bookkeeping counts each event once: every aggregate's applied version is its last
/// sequence, one usage row per usage report, usage sums (raw, hourly, daily) equal to the
/// log's deltas per SIM, the checkpoint at the log's end.
pub async fn assert_each_event_applied_once(pool: &PgPool) {
    let wrong_versions: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM (SELECT aggregate_type, aggregate_id, max(sequence) AS last FROM events \
         GROUP BY 1, 2) e FULL JOIN (SELECT * FROM projection_versions WHERE projector = $1) p \
         USING (aggregate_type, aggregate_id) WHERE p.version IS DISTINCT FROM e.last",
    )
    .bind(PROJECTOR)
    .fetch_one(pool)
    .await
    .unwrap();
    assert_eq!(
        wrong_versions, 0,
        "projection_versions differ from the log's last sequences"
    );

    let (reports, rows, distinct): (i64, i64, i64) = sqlx::query_as(
        "SELECT (SELECT count(*) FROM events WHERE event_type = 'UsageRecorded'), \
         (SELECT count(*) FROM sim_usage), (SELECT count(DISTINCT position) FROM sim_usage)",
    )
    .fetch_one(pool)
    .await
    .unwrap();
    assert!(reports > 0, "the workload should report usage");
    assert_eq!(
        (rows, distinct),
        (reports, reports),
        "one sim_usage row per usage report"
    );

    let from_log: BTreeMap<String, i64> = sqlx::query_as(
        "SELECT iccid, sum((payload->>'delta_data_bytes')::bigint)::bigint FROM events \
         WHERE event_type = 'UsageRecorded' GROUP BY iccid",
    )
    .fetch_all(pool)
    .await
    .unwrap()
    .into_iter()
    .collect();
    let total: i64 = from_log.values().sum();
    for table in ["fleet_usage_hourly", "fleet_usage_daily"] {
        let fleet = data_bytes_total(pool, table).await;
        assert_eq!(
            fleet, total,
            "{table}: the fleet's usage differs from the log's deltas"
        );
    }
    for table in ["sim_usage", "sim_usage_hourly", "sim_usage_daily"] {
        let projected: BTreeMap<String, i64> = sqlx::query_as(&format!(
            "SELECT iccid, sum(data_bytes)::bigint FROM {table} GROUP BY iccid"
        ))
        .fetch_all(pool)
        .await
        .unwrap()
        .into_iter()
        .collect();
        assert_eq!(
            projected, from_log,
            "{table}: usage per SIM differs from the log's deltas"
        );
    }

    let log = global_log(pool).await;
    let last = log.last().expect("events");
    let names = partition_names(pool).await;
    let checkpoints: Vec<(String, i64)> = sqlx::query_as(
        "SELECT transaction_id::text, position FROM projection_checkpoints WHERE projector = ANY($1)",
    )
    .bind(&names)
    .fetch_all(pool)
    .await
    .unwrap();
    assert_eq!(checkpoints.len(), names.len(), "a checkpoint per partition");
    for checkpoint in checkpoints {
        assert_eq!(
            checkpoint,
            (
                last.transaction_id.expect("stored events have one").to_string(),
                last.position
            ),
            "every partition's checkpoint is the log's last event"
        );
    }
}

/// Every SIM's row equals the replay of its events (the auditors' `state?as_of`).
pub async fn assert_sims_equal_replay(pool: &PgPool) {
    let log = global_log(pool).await;
    let mut by_sim: BTreeMap<&str, Vec<StoredEvent>> = BTreeMap::new();
    for event in &log {
        by_sim.entry(&event.iccid).or_default().push(event.clone());
    }
    for (iccid, events) in by_sim {
        assert_eq!(
            load_sim(pool, iccid).await.unwrap(),
            sim_view_as_of(&events),
            "{iccid}: read model differs from the replay"
        );
    }
}

/// A fresh rebuild from the log produces exactly the live read models. Stop the live
/// projectors first (the comparison needs them idle).
pub async fn assert_rebuild_equals_live(pool: &PgPool) {
    let live = snapshot(pool, false).await;
    rebuild(pool, &RebuildOptions::new(PROJECTOR)).await.unwrap();
    let rebuilt = snapshot(pool, false).await;
    for (table, rows) in &live {
        assert_eq!(
            &rebuilt[table], rows,
            "{table}: the live read model differs from a rebuild"
        );
    }
}

/// Whatever Redis holds for these SIMs equals Postgres (a stale entry would be served to
/// readers without a consistency token).
pub async fn assert_cache_agrees(pool: &PgPool, cache: &Cache, iccids: &[String]) -> usize {
    let mut cached = 0;
    for iccid in iccids {
        if let Some(entry) = cache.get_sim(iccid).await {
            cached += 1;
            assert_eq!(
                Some(entry),
                load_sim(pool, iccid).await.unwrap(),
                "{iccid}: Redis holds a stale entry"
            );
        }
    }
    cached
}

/// All of the above, for a settled system whose projectors are stopped.
pub async fn assert_nothing_missing_nothing_twice(js: &jetstream::Context, pool: &PgPool, stream: &str) {
    assert_stream_exactly_once(js, pool, stream).await;
    assert_each_event_applied_once(pool).await;
    assert_sims_equal_replay(pool).await;
    assert_rebuild_equals_live(pool).await;
}
