//! Test scaffolding: a simulator of the provider, a connector on the test's own database, and
//! (for operator requests) the relay publishing the test's events to a stream of its own.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use async_nats::jetstream;
use chrono::Utc;
use domain::{Iccid, Quota, QuotaCommand, QuotaKind, SimStatus};
use eventstore::{CommandContext, EventMetadata, EventStore};
use once_simulator::{RunningSimulator, Simulator, SimulatorConfig};
use sqlx::PgPool;
use sync_connector::{Config, Connector, Poller};
use testkit::database_url;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use uuid::Uuid;

pub const NATS_URL: &str = "nats://127.0.0.1:4222";

pub struct Harness {
    pub pool: PgPool,
    pub simulator: RunningSimulator,
    pub nats: async_nats::Client,
    pub stream: String,
    pub prefix: String,
    pub env: HashMap<String, String>,
}

impl Harness {
    /// A simulator with `sims` SIMs that change only when the test changes them, no rate
    /// limit unless `rate_limit` says so, and a connector configuration pointing at it.
    pub async fn new(pool: PgPool, sims: usize, rate_limit: u32, overrides: &[(&str, &str)]) -> Self {
        let simulator = Simulator::spawn(SimulatorConfig {
            sims,
            seed: 7,
            autonomous: false,
            sims_rate_limit_per_sec: rate_limit,
            ..SimulatorConfig::default()
        })
        .await
        .expect("simulator starts");
        let nats = async_nats::connect(NATS_URL)
            .await
            .expect("NATS at 127.0.0.1:4222");
        let id = Uuid::new_v4().simple().to_string();
        let stream = format!("TEST_SYNC_{id}");
        let prefix = format!("ts{id}");
        let consumer_prefix = format!("sync-{id}");
        let database_url = database_url(&pool).await;
        let mut env: HashMap<String, String> = [
            ("DATABASE_URL", database_url.as_str()),
            ("NATS_URL", NATS_URL),
            ("ONCE_API_URL", simulator.base_url().as_str()),
            ("NATS_STREAM", stream.as_str()),
            ("NATS_SUBJECT_PREFIX", prefix.as_str()),
            ("SYNC_CONSUMER_PREFIX", consumer_prefix.as_str()),
            ("SYNC_REQUESTS_PER_SECOND", "1000"),
            ("SYNC_BACKGROUND", "false"),
            ("SYNC_USAGE_DAYS", "2"),
            ("LOG_FORMAT", "pretty"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        for (key, value) in overrides {
            env.insert(key.to_string(), value.to_string());
        }
        Self {
            pool,
            simulator,
            nats,
            stream,
            prefix,
            env,
        }
    }

    /// [`Harness::new`], and a connector on it that has polled once: the platform knows the
    /// fleet and its quotas.
    pub async fn polled(
        pool: PgPool,
        sims: usize,
        rate_limit: u32,
        overrides: &[(&str, &str)],
    ) -> (Self, Connector) {
        let harness = Self::new(pool, sims, rate_limit, overrides).await;
        let connector = harness.connector().await;
        connector.poller.poll_once().await.unwrap();
        (harness, connector)
    }

    pub fn config(&self) -> Config {
        Config::from_lookup(|key| self.env.get(key).cloned()).expect("valid connector config")
    }

    pub async fn connector(&self) -> Connector {
        Connector::new(self.config(), self.pool.clone(), self.nats.clone())
            .await
            .expect("connector builds")
    }

    pub fn simulator(&self) -> &Simulator {
        &self.simulator.simulator
    }

    /// The relay, publishing this test's events to this test's stream, until the sender drops
    /// or says stop.
    pub fn start_relay(&self) -> (watch::Sender<bool>, JoinHandle<()>) {
        let config = relay::RelayConfig {
            stream: self.stream.clone(),
            subject_prefix: self.prefix.clone(),
            poll_interval: Duration::from_millis(20),
            ..relay::RelayConfig::default()
        };
        let registry = prometheus::Registry::new();
        let relay =
            relay::Relay::new(config, self.pool.clone(), self.nats.clone(), &registry).expect("relay");
        let (stop, mut stopped) = watch::channel(false);
        let handle = tokio::spawn(async move {
            relay
                .run(async move {
                    let _ = stopped.wait_for(|stop| *stop).await;
                })
                .await
        });
        (stop, handle)
    }

    pub async fn count(&self, event_type: &str) -> i64 {
        sqlx::query_scalar("SELECT count(*) FROM events WHERE event_type = $1")
            .bind(event_type)
            .fetch_one(&self.pool)
            .await
            .unwrap()
    }

    pub async fn head(&self) -> i64 {
        sqlx::query_scalar("SELECT COALESCE(max(position), 0) FROM events")
            .fetch_one(&self.pool)
            .await
            .unwrap()
    }

    /// Event types (with counts) stored after `position`.
    pub async fn events_after(&self, position: i64) -> BTreeMap<String, i64> {
        let rows: Vec<(String, i64)> =
            sqlx::query_as("SELECT event_type, count(*) FROM events WHERE position > $1 GROUP BY event_type")
                .bind(position)
                .fetch_all(&self.pool)
                .await
                .unwrap();
        rows.into_iter().collect()
    }

    /// `(aggregate_id, event_type)` pairs after `position`.
    pub async fn events_of_after(&self, position: i64) -> Vec<(String, String)> {
        sqlx::query_as("SELECT aggregate_id, event_type FROM events WHERE position > $1 ORDER BY position")
            .bind(position)
            .fetch_all(&self.pool)
            .await
            .unwrap()
    }

    /// Asserts that nothing was stored after `head` (naming what was).
    pub async fn assert_nothing_after(&self, head: i64) {
        assert_eq!(self.head().await, head, "{:?}", self.events_after(head).await);
    }

    /// An operator's data top-up of `iccid` (the command on its data quota), by the SIM's
    /// status `sim_status`; returns the quota's aggregate id and the request's id.
    pub async fn request_top_up(&self, iccid: &str, sim_status: SimStatus) -> (String, Uuid) {
        let parsed = Iccid::parse(iccid).unwrap();
        let quota_id = domain::quota_aggregate_id(&parsed, QuotaKind::Data);
        let request_id = Uuid::now_v7();
        EventStore::new(self.pool.clone())
            .execute::<Quota>(
                &quota_id,
                iccid,
                QuotaCommand::RequestTopUp {
                    request_id,
                    iccid: parsed,
                    kind: QuotaKind::Data,
                    volume: 500_000_000,
                    payment_method: None,
                    sim_status,
                    at: Utc::now(),
                },
                &CommandContext::new(EventMetadata::new("user:operator")),
            )
            .await
            .unwrap();
        (quota_id, request_id)
    }

    /// The state of a request's `sync_dispatches` record.
    pub async fn dispatch_state(&self, request_id: Uuid) -> String {
        sqlx::query_scalar("SELECT state FROM sync_dispatches WHERE request_id = $1")
            .bind(request_id)
            .fetch_one(&self.pool)
            .await
            .unwrap()
    }

    pub async fn cleanup(self) {
        let js = jetstream::new(self.nats.clone());
        let _ = js.delete_stream(&self.stream).await;
    }
}

/// A poll, then (past a detail interval of one second) the round-robin over every SIM.
pub async fn poll_and_refresh_all(poller: &Poller) {
    poller.poll_once().await.unwrap();
    tokio::time::sleep(Duration::from_millis(1100)).await;
    poller.refresh_round_robin(i64::MAX).await.unwrap();
}
