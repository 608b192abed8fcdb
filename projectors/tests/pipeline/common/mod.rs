//! Test scaffolding: a per-test JetStream stream, events stored through the real event store
//! and published as the relay would, a projector, and snapshots of every read-model table.

pub mod apis;
pub mod faults;
pub mod postgres;
pub mod processes;

use std::collections::BTreeMap;
use std::time::Duration;

use async_nats::jetstream::{self, stream};
use chrono::{DateTime, TimeZone, Utc};
use domain::ids::{quota_aggregate_id, Iccid, Imei, Imsi, QuotaKind};
use domain::{Aggregate, Quota, QuotaCommand, Sim, SimCommand, SimStatus, Sms, SmsCommand};
use eventstore::{CommandContext, EventMetadata, EventStore, Executed, GlobalLog, LogCursor, StoredEvent};
use projectors::{ConsumerSettings, Projector, ProjectorMetrics, ProjectorSettings};
use readmodel::{Cache, CacheConfig};
use sqlx::PgPool;
pub use testkit::bench::reset_read_models;
use testkit::bench::READ_MODEL_TABLES;
use tokio::sync::watch;
use uuid::Uuid;

pub const NATS_URL: &str = "nats://127.0.0.1:4222";
pub const REDIS_URL: &str = "redis://127.0.0.1:6379";
pub const PROJECTOR: &str = "read-models";

pub const SIM_A: &str = "8988303000000000001";
pub const SIM_B: &str = "8988303000000000019";

pub fn at(day: u32, hour: u32, minute: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, day, hour, minute, 0).unwrap()
}

/// A NATS stream of its own (unique name and subject prefix), deleted by [`Env::cleanup`].
pub struct Env {
    pub pool: PgPool,
    pub nats: async_nats::Client,
    pub js: jetstream::Context,
    pub stream: String,
    pub prefix: String,
    pub redis_prefix: String,
    pub metrics: platform::Metrics,
    pub projector_metrics: ProjectorMetrics,
}

impl Env {
    pub async fn new(pool: PgPool) -> Self {
        let nats = async_nats::connect(NATS_URL)
            .await
            .expect("NATS at 127.0.0.1:4222");
        let js = jetstream::new(nats.clone());
        let id = Uuid::new_v4().simple().to_string();
        let metrics = platform::Metrics::new();
        let projector_metrics = ProjectorMetrics::register(metrics.registry());
        let env = Self {
            pool,
            nats,
            js,
            stream: format!("TEST_PROJ_{id}"),
            prefix: format!("tp{id}"),
            redis_prefix: format!("test-projectors-{id}"),
            metrics,
            projector_metrics,
        };
        env.create_stream().await;
        env
    }

    pub async fn create_stream(&self) {
        self.js
            .create_stream(stream::Config {
                name: self.stream.clone(),
                subjects: vec![format!("{}.v1.>", self.prefix)],
                max_age: Duration::from_secs(3600),
                ..Default::default()
            })
            .await
            .expect("create the test stream");
    }

    /// A fresh stream (and so a fresh consumer): the projector reads everything again.
    pub async fn recreate_stream(&self) {
        let _ = self.js.delete_stream(&self.stream).await;
        self.create_stream().await;
    }

    pub async fn cleanup(self) {
        let _ = self.js.delete_stream(&self.stream).await;
    }

    /// As the relay publishes: subject, body, headers.
    pub async fn publish(&self, event: &StoredEvent) {
        self.publish_with(event, true).await
    }

    /// Without `Nats-Msg-Id`, so JetStream does not deduplicate it: a redelivery's stand-in.
    pub async fn publish_again(&self, event: &StoredEvent) {
        self.publish_with(event, false).await
    }

    async fn publish_with(&self, event: &StoredEvent, with_id: bool) {
        publish_event(&self.js, &self.prefix, event, with_id).await
    }

    pub async fn publish_all(&self, events: &[StoredEvent]) {
        for event in events {
            self.publish(event).await;
        }
    }

    pub fn settings(&self, limit: Option<u64>) -> ProjectorSettings {
        ProjectorSettings {
            name: PROJECTOR.to_owned(),
            stream: self.stream.clone(),
            filter_subject: format!("{}.v1.>", self.prefix),
            subject_prefix: self.prefix.clone(),
            consumer: ConsumerSettings {
                ack_wait: Duration::from_secs(1),
                max_ack_pending: 256,
                batch: 8,
                batch_wait: Duration::from_millis(2),
            },
            message_limit: limit,
            share: eventstore::Share::WHOLE,
        }
    }

    pub async fn cache(&self) -> Cache {
        Cache::connect(CacheConfig::new(REDIS_URL, &self.redis_prefix)).await
    }

    pub async fn projector_with(&self, cache: Cache, limit: Option<u64>) -> Projector {
        self.projector_for(cache, self.settings(limit)).await
    }

    /// A projector on this stream's database and metrics, with `settings` (a share, a limit).
    pub async fn projector_for(&self, cache: Cache, settings: ProjectorSettings) -> Projector {
        Projector::new(
            self.pool.clone(),
            self.nats.clone(),
            cache,
            self.projector_metrics.clone(),
            settings,
        )
        .await
        .unwrap()
    }

    pub async fn projector(&self) -> Projector {
        self.projector_with(self.cache().await, None).await
    }

    /// Publishes `events`, then runs a new projector until it has applied the last of them;
    /// the projector, for more runs.
    pub async fn project(&self, events: &[StoredEvent]) -> Projector {
        self.publish_all(events).await;
        let projector = self.projector().await;
        self.run_to_end(&projector, events).await;
        projector
    }

    /// Publishes what the log holds after its first `published` events and runs `projector`
    /// until it has applied the log's last event; the whole log.
    pub async fn project_the_rest(&self, projector: &Projector, published: usize) -> Vec<StoredEvent> {
        let all = global_log(&self.pool).await;
        self.publish_all(&all[published..]).await;
        self.run_to_end(projector, &all).await;
        all
    }

    /// Empties the read models and the stream: the next projector starts from nothing.
    pub async fn start_over(&self) {
        reset_read_models(&self.pool).await;
        self.recreate_stream().await;
    }

    /// [`Env::run_until`] the last of `events`.
    pub async fn run_to_end(&self, projector: &Projector, events: &[StoredEvent]) {
        self.run_until(projector, events.last().unwrap().position).await
    }

    /// Runs `projector` to the last of `events` again and again until the counter `name`
    /// reaches `count`; fails with `what` after 10 s.
    pub async fn run_until_counted(
        &self,
        projector: &Projector,
        events: &[StoredEvent],
        name: &str,
        count: u64,
        what: &str,
    ) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while self.counter(name) < count {
            assert!(tokio::time::Instant::now() < deadline, "{what}");
            self.run_to_end(projector, events).await;
        }
    }

    /// Runs `projector` until the checkpoint reaches `position` (and the stream is drained),
    /// then stops it.
    pub async fn run_until(&self, projector: &Projector, position: i64) {
        let (stop, shutdown) = watch::channel(false);
        let running = {
            let projector = projector.clone();
            tokio::spawn(async move { projector.run(shutdown).await })
        };
        self.wait_for_checkpoint(position).await;
        self.wait_until_drained().await;
        stop.send(true).unwrap();
        tokio::time::timeout(Duration::from_secs(10), running)
            .await
            .expect("projector stops on shutdown")
            .unwrap()
            .unwrap();
    }

    pub async fn wait_for_checkpoint(&self, position: i64) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            let reached: Option<i64> =
                // With TimescaleDB the continuous aggregates must have seen late usage too.
                sqlx::query_scalar(
                    "SELECT position FROM projection_checkpoints WHERE projector = $1 \
                     AND NOT EXISTS (SELECT 1 FROM usage_rollup_refreshes)",
                )
                    .bind(PROJECTOR)
                    .fetch_optional(&self.pool)
                    .await
                    .unwrap();
            if reached.is_some_and(|p| p >= position) {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "checkpoint stuck at {reached:?}, waiting for {position}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Until the consumer has nothing pending or unacknowledged.
    pub async fn wait_until_drained(&self) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            let stream = self.js.get_stream(&self.stream).await.unwrap();
            if let Ok(mut consumer) = stream
                .get_consumer::<jetstream::consumer::pull::Config>(PROJECTOR)
                .await
            {
                let info = consumer.info().await.unwrap();
                if info.num_pending == 0 && info.num_ack_pending == 0 {
                    return;
                }
            }
            assert!(tokio::time::Instant::now() < deadline, "consumer never drained");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub fn counter(&self, name: &str) -> u64 {
        let text = self.metrics.render();
        text.lines()
            .find(|l| l.starts_with(&format!("{name}{{")) && l.contains(&format!("=\"{PROJECTOR}\"}}")))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse::<f64>().ok())
            .map(|v| v as u64)
            .unwrap_or(0)
    }
}

/// As the relay publishes: subject, body, headers (`with_id: false` leaves `Nats-Msg-Id` out).
pub async fn publish_event(js: &jetstream::Context, prefix: &str, event: &StoredEvent, with_id: bool) {
    let subject = format!("{prefix}.v1.{}.{}", event.iccid, event.event_type);
    let mut headers = async_nats::HeaderMap::new();
    if with_id {
        headers.insert(
            "Nats-Msg-Id",
            format!(
                "{}:{}:{}",
                event.aggregate_type, event.aggregate_id, event.sequence
            )
            .as_str(),
        );
    }
    headers.insert("Sim-Position", event.position.to_string().as_str());
    if let Some(txid) = event.transaction_id {
        headers.insert("Sim-Transaction-Id", txid.to_string().as_str());
    }
    let body = serde_json::to_vec(event).unwrap();
    js.publish_with_headers(subject, headers, body.into())
        .await
        .unwrap()
        .await
        .unwrap();
}

pub async fn publish_to(js: &jetstream::Context, prefix: &str, event: &StoredEvent) {
    publish_event(js, prefix, event, true).await
}

/// Appends a SIM event as a newer command-service could write it (a type or version this code
/// may not decode), after the SIM aggregate's last event.
pub async fn append_raw_sim_event(
    pool: &PgPool,
    iccid: &str,
    event_type: &str,
    event_version: &str,
    payload: &str,
    metadata: &str,
) {
    sqlx::query(
        "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata, iccid) \
         SELECT 'sim', $1, max(sequence) + 1, $2, $3, $4::jsonb, $5::jsonb, $1 \
         FROM events WHERE aggregate_type = 'sim' AND aggregate_id = $1",
    )
    .bind(iccid)
    .bind(event_type)
    .bind(event_version)
    .bind(payload)
    .bind(metadata)
    .execute(pool)
    .await
    .expect("append a raw SIM event");
}

/// Inserts a copy of the registration `template` for the SIM `iccid` (its first event)
/// straight into the events table, on `executor`: the pool, or a transaction held open.
pub async fn insert_registration_copy<'e>(
    executor: impl sqlx::PgExecutor<'e>,
    template: &StoredEvent,
    iccid: &str,
) {
    let mut payload = template.payload.clone();
    payload["iccid"] = serde_json::json!(iccid);
    sqlx::query(
        "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata, iccid) \
         VALUES ('sim', $1, 1, 'SimRegistered', $2, $3, $4, $1)",
    )
    .bind(iccid)
    .bind(&template.event_version)
    .bind(&payload)
    .bind(&template.metadata)
    .execute(executor)
    .await
    .unwrap();
}

/// The SIM whose label the schema refuses, written by [`write_a_label_the_schema_refuses`].
pub const SIM_EVIL: &str = "8988303000000000050";

/// Registers [`SIM_EVIL`], adds a rule to the schema (`test_no_evil`, for now) that its next
/// label breaks, and writes that label: an event Postgres refuses to project.
pub async fn write_a_label_the_schema_refuses(pool: &PgPool) {
    let w = Writer::new(pool);
    let d = SIM_EVIL;
    w.sim(d, register(d, "901405100000008", "good")).await;
    sqlx::query("ALTER TABLE sims ADD CONSTRAINT test_no_evil CHECK (label IS DISTINCT FROM 'evil')")
        .execute(pool)
        .await
        .unwrap();
    w.sim(
        d,
        SimCommand::UpdateDetails {
            label: Some(Some("evil".into())),
            tags: None,
        },
    )
    .await;
}

/// Every event stored, as the relay reads it: the global log, in order.
///
/// Transaction ids are cluster-wide: another test's open transaction (in its own database)
/// holds the log's horizon back for a moment, so this waits until every stored event is in.
pub async fn global_log(pool: &PgPool) -> Vec<StoredEvent> {
    let stored: i64 = sqlx::query_scalar("SELECT count(*) FROM events")
        .fetch_one(pool)
        .await
        .unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let events = GlobalLog::new(pool.clone())
            .read_after(LogCursor::START, 100_000)
            .await
            .unwrap();
        if events.len() as i64 == stored {
            return events;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the log's horizon never passed every event"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

pub fn ctx(actor: &str, occurred_at: DateTime<Utc>) -> CommandContext {
    let mut metadata = EventMetadata::new(actor);
    metadata.occurred_at = occurred_at;
    CommandContext::new(metadata)
}

pub struct Writer {
    store: EventStore,
}

impl Writer {
    pub fn new(pool: &PgPool) -> Self {
        Self {
            store: EventStore::new(pool.clone()),
        }
    }

    async fn exec<A: Aggregate>(
        &self,
        id: &str,
        iccid: &str,
        command: A::Command,
        ctx: &CommandContext,
    ) -> usize
    where
        A::Command: Clone,
    {
        match self.store.execute::<A>(id, iccid, command, ctx).await {
            Ok(Executed::New { events, .. }) => events.len(),
            Ok(other) => panic!("unexpected {other:?}"),
            Err(error) => panic!("command on {id} refused: {error}"),
        }
    }

    pub async fn sim(&self, iccid: &str, command: SimCommand) -> usize {
        self.exec::<Sim>(iccid, iccid, command, &ctx("user:alice", at(1, 12, 0)))
            .await
    }

    pub async fn sim_at(&self, iccid: &str, command: SimCommand, occurred_at: DateTime<Utc>) -> usize {
        self.exec::<Sim>(iccid, iccid, command, &ctx("connector:sync", occurred_at))
            .await
    }

    pub async fn quota(&self, iccid: &str, kind: QuotaKind, command: QuotaCommand) -> usize {
        let id = quota_aggregate_id(&Iccid::parse(iccid).unwrap(), kind);
        self.exec::<Quota>(&id, iccid, command, &ctx("connector:sync", at(1, 12, 0)))
            .await
    }

    /// Assigns SIM `iccid` a data quota of `total` bytes, all remaining, until the 31st.
    pub async fn assign_data_quota(&self, iccid: &str, total: u64) -> usize {
        let assign = QuotaCommand::Assign {
            iccid: Iccid::parse(iccid).unwrap(),
            kind: QuotaKind::Data,
            total,
            remaining: total,
            expiry_date: Some(at(31, 0, 0)),
            at: at(1, 12, 0),
        };
        self.quota(iccid, QuotaKind::Data, assign).await
    }

    /// [`Writer::sim`] with each of `commands`, in order.
    pub async fn sims(&self, iccid: &str, commands: impl IntoIterator<Item = SimCommand>) -> usize {
        let mut events = 0;
        for command in commands {
            events += self.sim(iccid, command).await;
        }
        events
    }

    pub async fn sms(&self, message_id: Uuid, iccid: &str, command: SmsCommand) -> usize {
        self.exec::<Sms>(
            &message_id.to_string(),
            iccid,
            command,
            &ctx("user:alice", at(1, 12, 0)),
        )
        .await
    }
}

pub fn register(iccid: &str, imsi: &str, label: &str) -> SimCommand {
    SimCommand::Register {
        iccid: Iccid::parse(iccid).unwrap(),
        imsi: Imsi::parse(imsi).unwrap(),
        msisdn: None,
        label: Some(label.into()),
        tags: vec!["pump".into()],
        at: at(1, 8, 0),
    }
}

/// An activation requested at `requested` and confirmed at `confirmed`, with one new request id.
pub fn activation(requested: DateTime<Utc>, confirmed: DateTime<Utc>) -> [SimCommand; 2] {
    let request_id = Uuid::now_v7();
    let request = |at| SimCommand::RequestActivation { request_id, at };
    let confirm = |at| SimCommand::ConfirmActivation { request_id, at };
    [request(requested), confirm(confirmed)]
}

pub const MT_ID: Uuid = Uuid::from_u128(0x0190e0e0_0000_7000_8000_000000000001);
pub const MO_ID: Uuid = Uuid::from_u128(0x0190e0e0_0000_7000_8000_000000000002);
pub const TOPUP_ID: Uuid = Uuid::from_u128(0x0190e0e0_0000_7000_8000_000000000003);
pub const TOPUP_B_ID: Uuid = Uuid::from_u128(0x0190e0e0_0000_7000_8000_000000000004);

/// Two SIMs and every event type (see the assertions in `projection.rs`).
pub async fn scenario(pool: &PgPool) -> Vec<StoredEvent> {
    let w = Writer::new(pool);
    let a = SIM_A;
    let iccid_a = Iccid::parse(a).unwrap();
    w.sim(a, register(a, "901405100000001", "pump A")).await;
    w.sim(
        a,
        SimCommand::UpdateDetails {
            label: Some(Some("pump A1".into())),
            tags: Some(vec!["pump".into(), "north".into()]),
        },
    )
    .await;
    w.sim(a, SimCommand::SetImeiLock { enabled: true }).await;
    w.sim(
        a,
        SimCommand::RecordImei {
            imei: Imei::parse("490154203237518").unwrap(),
        },
    )
    .await;
    w.sims(a, activation(at(1, 9, 0), at(1, 9, 5))).await;
    w.sim(
        a,
        SimCommand::RecordConnectivity {
            network: Some("Telekom".into()),
            country: Some("DE".into()),
            rat: Some("LTE-M".into()),
            ip_address: Some("10.0.0.7".into()),
            at: at(1, 9, 30),
        },
    )
    .await;
    // Two reports of one provider day; the second's metadata time lies after the period
    // (clamped to its end).
    let usage = |data_bytes, sms_mo| SimCommand::RecordUsage {
        period_start: at(1, 0, 0),
        period_end: at(2, 0, 0),
        data_bytes,
        sms_mo,
        sms_mt: 1,
    };
    w.sim_at(a, usage(1_000, 1), at(1, 10, 15)).await;
    w.sim_at(a, usage(3_500, 2), at(3, 10, 0)).await;
    w.sims(a, suspension(at(1, 11, 0), at(1, 11, 1))).await;
    w.sim(
        a,
        SimCommand::RecordProviderStatus {
            status: domain::ProviderStatus::Enabled,
            at: at(1, 11, 30),
        },
    )
    .await;
    w.assign_data_quota(a, 1_000).await;
    w.quota(
        a,
        QuotaKind::Data,
        QuotaCommand::RecordConsumption {
            remaining: 150,
            at: at(1, 13, 0),
        },
    )
    .await;
    w.quota(
        a,
        QuotaKind::Data,
        QuotaCommand::RequestTopUp {
            request_id: TOPUP_ID,
            iccid: iccid_a.clone(),
            kind: QuotaKind::Data,
            volume: 500,
            payment_method: None,
            sim_status: SimStatus::Active,
            at: at(1, 14, 0),
        },
    )
    .await;
    w.quota(
        a,
        QuotaKind::Data,
        QuotaCommand::CompleteTopUp {
            request_id: TOPUP_ID,
            volume_added: 500,
            at: at(1, 14, 5),
        },
    )
    .await;
    w.sms(
        MT_ID,
        a,
        SmsCommand::RequestSend {
            message_id: MT_ID,
            iccid: iccid_a.clone(),
            payload: "reboot".into(),
            source_address: None,
            at: at(1, 15, 0),
        },
    )
    .await;
    w.sms(
        MT_ID,
        a,
        SmsCommand::MarkSubmitted {
            provider_message_id: Some("p-1".into()),
            at: at(1, 15, 1),
        },
    )
    .await;
    w.sms(MT_ID, a, SmsCommand::MarkDelivered { at: at(1, 15, 2) })
        .await;
    w.sms(
        MO_ID,
        a,
        SmsCommand::RecordReceived {
            message_id: MO_ID,
            iccid: iccid_a.clone(),
            payload: "ok".into(),
            source_address: Some("+4912345".into()),
            provider_message_id: Some("p-2".into()),
            received_at: at(1, 15, 3),
        },
    )
    .await;

    // SIM B: a quota used up (80 %, 100 %, exhausted), a pending top-up of a quota the
    // provider never reported, then terminated.
    let b = SIM_B;
    let iccid_b = Iccid::parse(b).unwrap();
    w.sim(b, register(b, "901405100000002", "meter B")).await;
    w.assign_data_quota(b, 1_000).await;
    w.quota(
        b,
        QuotaKind::Data,
        QuotaCommand::RecordConsumption {
            remaining: 0,
            at: at(1, 13, 0),
        },
    )
    .await;
    w.quota(
        b,
        QuotaKind::Sms,
        QuotaCommand::RequestTopUp {
            request_id: TOPUP_B_ID,
            iccid: iccid_b.clone(),
            kind: QuotaKind::Sms,
            volume: 50,
            payment_method: Some("invoice".into()),
            sim_status: SimStatus::Inactive,
            at: at(1, 16, 0),
        },
    )
    .await;
    w.sim(
        b,
        SimCommand::Terminate {
            reason: Some("lost".into()),
            at: at(1, 17, 0),
        },
    )
    .await;
    global_log(pool).await
}

/// The [`scenario`] stored, published on a new [`Env`]'s stream and projected to its end:
/// the environment, the events and the projector that applied them.
pub async fn projected_scenario(pool: &PgPool) -> (Env, Vec<StoredEvent>, Projector) {
    let events = scenario(pool).await;
    let env = Env::new(pool.clone()).await;
    let projector = env.project(&events).await;
    (env, events, projector)
}

/// A suspension requested at `requested` and confirmed at `confirmed`, with one new request id.
pub fn suspension(requested: DateTime<Utc>, confirmed: DateTime<Utc>) -> [SimCommand; 2] {
    let request_id = Uuid::now_v7();
    let request = |at| SimCommand::RequestSuspension { request_id, at };
    let confirm = |at| SimCommand::ConfirmSuspension { request_id, at };
    [request(requested), confirm(confirmed)]
}

/// Every read-model table, row by row (as JSON, sorted). The checkpoint's `updated_at` is
/// wall-clock time and left out; `with_stream_sequence: false` leaves the stream sequence
/// out too (runs that published different message sets).
pub async fn snapshot(pool: &PgPool, with_stream_sequence: bool) -> BTreeMap<String, Vec<String>> {
    let mut tables = BTreeMap::new();
    for table in READ_MODEL_TABLES {
        let drop = match (table, with_stream_sequence) {
            ("projection_checkpoints", true) => " - 'updated_at'",
            ("projection_checkpoints", false) => " - 'updated_at' - 'stream_sequence'",
            _ => "",
        };
        let mut rows: Vec<String> =
            sqlx::query_scalar(&format!("SELECT (to_jsonb(t){drop})::text FROM {table} t"))
                .fetch_all(pool)
                .await
                .unwrap();
        rows.sort();
        tables.insert(table.to_owned(), rows);
    }
    tables
}

/// The data bytes a usage table or rollup holds in all (0 when empty).
pub async fn data_bytes_total(pool: &PgPool, table: &str) -> i64 {
    sqlx::query_scalar(&format!(
        "SELECT coalesce(sum(data_bytes), 0)::bigint FROM {table}"
    ))
    .fetch_one(pool)
    .await
    .unwrap()
}
