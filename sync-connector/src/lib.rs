//! The sync connector: polls the 1NCE Management API, turns what changed into commands on the
//! aggregates, and carries out operator requests at 1NCE. See `docs/sync-connector.md`.
//!
//! `main.rs` reads the configuration and runs [`App`] (`App::build(config)` → [`App::addr`] →
//! [`App::run_until_stopped`]). Tests start the same `App`, or build a [`Connector`] on their
//! own database and drive its parts ([`Poller`], [`Requests`], [`Jobs`]) directly.

pub mod config;
pub mod consumers;
pub mod convert;
pub mod dispatch;
pub mod error;
pub mod issue;
pub mod jobs;
pub mod last_seen;
pub mod metrics;
pub mod observe;
pub mod poll;
pub mod requests;
pub mod streamer;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use eventstore::{EventStore, GlobalLog};
use futures::StreamExt;
use once_client::OnceClient;
use platform::http::ReadinessFlags;
use platform::jetstream_presence::JetStreamPresence;
use platform::readiness::DependencyCheck;
use platform::startup::{self, Listening, Shutdown};
use platform::Metrics;
use sqlx::PgPool;
use tokio::sync::watch;
use tokio::task::JoinSet;

pub use config::{Config, Schedule, Shard};
pub use dispatch::{Dispatches, Instance, RequestKind};
pub use error::SyncError;
pub use issue::Issuer;
pub use jobs::Jobs;
pub use last_seen::LastSeen;
pub use metrics::SyncMetrics;
pub use poll::{Poller, SweepReport};
pub use requests::{Disposition, Requests};

pub use platform::StartError;

pub struct Connector {
    pub config: Config,
    pub pool: PgPool,
    pub nats: async_nats::Client,
    pub metrics: Metrics,
    pub sync_metrics: SyncMetrics,
    pub client: OnceClient,
    pub poller: Poller,
    pub requests: Requests,
    pub jobs: Jobs,
    pub record_check: consumers::RecordCheck,
    // Keeps this instance's liveness lock for as long as the connector lives.
    pub instance: Arc<Instance>,
    /// What `/ready` reports beside Postgres and NATS (the liveness lock).
    pub readiness: ReadinessFlags,
    /// `jetstream_stream_present` / `jetstream_consumer_present` of the request consumers.
    pub jetstream_presence: JetStreamPresence,
    /// The Data Streamer receiver (its route exists only with credentials) and its applier.
    pub receiver: Arc<streamer::Receiver>,
    pub applier: streamer::Applier,
    pub streamer_metrics: streamer::StreamerMetrics,
    pub wake_ups: streamer::WakeUps,
}

impl Connector {
    pub async fn new(config: Config, pool: PgPool, nats: async_nats::Client) -> Result<Self, StartError> {
        let metrics = Metrics::new();
        let sync_metrics =
            SyncMetrics::register(metrics.registry()).map_err(|e| StartError::Setup(e.to_string()))?;
        sync_metrics
            .poll_interval
            .set(config.schedule.poll_interval.as_secs_f64());
        let jetstream_presence =
            JetStreamPresence::register(metrics.registry()).map_err(|e| StartError::Setup(e.to_string()))?;
        let mut client_config = config.provider.clone();
        client_config.observer = Some(Arc::new(sync_metrics.clone()));
        let client = OnceClient::new(client_config).map_err(|e| StartError::Config(e.to_string()))?;
        let store = EventStore::new(pool.clone()).with_snapshots_every(config.common.snapshot_every);
        let issuer = Issuer::new(store, sync_metrics.clone());
        let last_seen = LastSeen::new(pool.clone(), config.shard);
        let wake_ups = streamer::WakeUps::default();
        let inbox = streamer::Inbox::new(pool.clone(), config.shard);
        let mut poller = Poller::new(
            client.clone(),
            issuer.clone(),
            last_seen,
            config.shard,
            config.schedule.clone(),
            sync_metrics.clone(),
        );
        if config.schedule.network_events {
            poller = poller.with_network_events(inbox.clone(), wake_ups.stored.clone());
        }
        let instance = Arc::new(Instance::start(&pool).await?);
        let streamer_metrics = streamer::StreamerMetrics::register(metrics.registry())
            .map_err(|e| StartError::Setup(e.to_string()))?;
        if !config.streamer.credentials.is_empty() {
            streamer_metrics.initialise();
        }
        let receiver = Arc::new(streamer::Receiver::new(
            &config.streamer,
            inbox.clone(),
            streamer_metrics.clone(),
            wake_ups.stored.clone(),
        ));
        let applier = streamer::Applier::new(
            inbox,
            issuer.clone(),
            LastSeen::new(pool.clone(), config.shard),
            streamer_metrics.clone(),
            config.streamer.apply_batch,
            config.streamer.apply_concurrency,
        );
        let requests = Requests::new(
            &client,
            issuer,
            Dispatches::new(pool.clone()),
            &instance,
            sync_metrics.clone(),
            config.sms_source_address.clone(),
        );
        let jobs = Jobs::new(pool.clone(), poller.clone(), config.shard);
        let log = GlobalLog::new(pool.clone());
        let record_check = consumers::RecordCheck {
            store_id: log.store_id().await?,
            log,
            subject_prefix: config.subject_prefix.clone(),
            forged: sync_metrics.forged.clone(),
        };
        let connector = Self {
            receiver,
            applier,
            streamer_metrics,
            wake_ups,
            record_check,
            jetstream_presence,
            readiness: ReadinessFlags::new(),
            config,
            pool,
            nats,
            metrics,
            sync_metrics,
            client,
            poller,
            requests,
            jobs,
            instance,
        };
        let settings = connector.consumer_settings();
        for kind in RequestKind::ALL {
            connector
                .jetstream_presence
                .track(&settings.stream, &settings.name(kind));
            // Every series from the start (at 0), so a rate over the first request counts it.
            for state in ["completed", "failed", "unknown"] {
                connector
                    .sync_metrics
                    .requests
                    .with_label_values(&[kind.as_str(), state]);
            }
        }
        Ok(connector)
    }

    /// `/health`, `/ready`, `/metrics` and (with credentials) the Data Streamer receiver, with
    /// the standard layers: what [`App`] serves on `CONNECTOR_ADDR`.
    pub fn router(&self) -> Router {
        ops_router(
            self.receiver.clone().routes(),
            self.metrics.clone(),
            self.pool.clone(),
            self.nats.clone(),
            self.readiness.clone(),
            self.sync_metrics.clone(),
        )
    }

    pub fn consumer_settings(&self) -> consumers::ConsumerSettings {
        consumers::ConsumerSettings {
            stream: self.config.stream.clone(),
            subject_prefix: self.config.subject_prefix.clone(),
            name_prefix: self.config.consumer_prefix.clone(),
            ack_wait: self.config.request_ack_wait,
        }
    }

    /// Starts every loop of the connector as tasks that stop when `shutdown` turns true.
    pub fn spawn(&self, shutdown: watch::Receiver<bool>) -> JoinSet<()> {
        let mut tasks = JoinSet::new();
        let jetstream = async_nats::jetstream::new(self.nats.clone());
        for kind in RequestKind::ALL {
            tasks.spawn(consumers::run(
                jetstream.clone(),
                self.consumer_settings(),
                kind,
                self.requests.clone(),
                self.record_check.clone(),
                shutdown.clone(),
            ));
        }
        tasks.spawn(instance_readiness_loop(
            self.instance.clone(),
            self.readiness.clone(),
            shutdown.clone(),
        ));
        tasks.spawn(poll_loop(
            self.poller.clone(),
            self.config.provider.requests_per_second,
            self.wake_ups.registered.clone(),
            shutdown.clone(),
        ));
        // Records stored by any instance (and left by a previous run) are applied even when
        // this one's receiver is off.
        tasks.spawn(streamer::apply_loop(
            self.applier.clone(),
            self.wake_ups.clone(),
            self.config.streamer.clone(),
            self.streamer_metrics.clone(),
            shutdown.clone(),
        ));
        tasks.spawn(detail_loop(
            self.poller.clone(),
            self.config.schedule.background,
            shutdown.clone(),
        ));
        tasks.spawn(job_loop(
            self.jobs.clone(),
            self.nats.clone(),
            self.config.schedule.job_poll,
            shutdown.clone(),
        ));
        tasks.spawn(
            self.jetstream_presence
                .clone()
                .run(jetstream.clone(), shutdown.clone()),
        );
        tasks.spawn(self.requests.clone().limits_loop(shutdown.clone()));
        tasks.spawn(poll_age_loop(self.sync_metrics.clone(), shutdown));
        tasks
    }
}

/// The SIM-list sweep, every poll interval. It only records what the list shows; the
/// per-SIM calls it makes due are the detail loop's, so a large first sweep (every SIM new)
/// never holds the next sweep back.
async fn poll_loop(
    poller: Poller,
    requests_per_second: u32,
    registered: Arc<tokio::sync::Notify>,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        let started = std::time::Instant::now();
        let swept = tokio::select! {
            swept = poller.sweep_list() => swept,
            _ = shutdown.changed() => return,
        };
        let mut pages = 0;
        match swept {
            Ok(report) => {
                tracing::info!(?report, "SIM-list sweep finished");
                pages = report.pages;
                if report.sims_new > 0 {
                    // Streamed records may be waiting for these SIMs.
                    registered.notify_one();
                }
            }
            Err(error) => tracing::warn!(%error, "SIM-list sweep failed; the next one starts on schedule"),
        }
        // The list's share of the call budget is bounded (SYNC_LIST_BUDGET_PERCENT).
        let pause = poller
            .pause_after_sweep(pages, started.elapsed(), requests_per_second)
            .await;
        if consumers::sleep_or_shutdown(pause, &mut shutdown).await {
            return;
        }
    }
}

/// Per-SIM refreshes: first the SIMs whose list entry changed, then (when `background`) the
/// round-robin over SIMs due a refresh. Their calls wait behind operator requests and the
/// list sweep in the call budget.
async fn detail_loop(poller: Poller, background: bool, mut shutdown: watch::Receiver<bool>) {
    loop {
        // Stopping abandons a batch midway, which is safe: every command is its own
        // transaction and a SIM whose refresh did not finish stays due.
        let refresh = async {
            match poller.refresh_due(20, once_client::Priority::ChangedSims).await {
                Ok(report) if report.sims_changed > 0 => true,
                Ok(_) if background => {
                    // The usage round first; the safety net gets at least one SIM per batch
                    // of it, so a fleet whose usage round never ends still gets its full
                    // refreshes (later than daily), and all of the rest.
                    let usage = poller.refresh_usage_round(20).await;
                    let busy = matches!(&usage, Ok(report) if report.sims_seen > 0);
                    if let Err(error) = &usage {
                        tracing::warn!(%error, "usage round failed");
                    }
                    match poller.refresh_round_robin(if busy { 1 } else { 20 }).await {
                        Ok(report) => busy || report.sims_seen > 0,
                        Err(error) => {
                            tracing::warn!(%error, "round-robin refresh failed; pausing");
                            false
                        }
                    }
                }
                Ok(_) => false,
                Err(error) => {
                    tracing::warn!(%error, "refresh of changed SIMs failed; pausing");
                    false
                }
            }
        };
        let worked = tokio::select! {
            worked = refresh => worked,
            _ = shutdown.changed() => return,
        };
        if !worked && consumers::sleep_or_shutdown(Duration::from_secs(5), &mut shutdown).await {
            return;
        }
    }
}

/// Sync jobs: woken by the command API's NATS message, or found by the periodic look.
async fn job_loop(
    jobs: Jobs,
    nats: async_nats::Client,
    every: Duration,
    mut shutdown: watch::Receiver<bool>,
) {
    match jobs.forget_interrupted_runs().await {
        Ok(0) => {}
        Ok(n) => tracing::info!(runs = n, "sync jobs interrupted by the last stop will run again"),
        Err(error) => tracing::warn!(%error, "cannot reset interrupted sync jobs"),
    }
    let mut wake_ups = nats.subscribe(relay::wire::JOBS_SUBJECT).await.ok();
    loop {
        if let Err(error) = jobs.run_waiting().await {
            tracing::warn!(%error, "sync jobs could not run");
        }
        let woken = async {
            match wake_ups.as_mut() {
                Some(subscription) => {
                    subscription.next().await;
                }
                None => std::future::pending::<()>().await,
            }
        };
        tokio::select! {
            _ = woken => {}
            _ = tokio::time::sleep(every) => {}
            _ = shutdown.changed() => return,
        }
    }
}

/// `/ready` answers 503 while the instance's liveness lock is being taken again (its
/// connection failed): other instances may be taking over its dispatches meanwhile.
async fn instance_readiness_loop(
    instance: Arc<Instance>,
    readiness: ReadinessFlags,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        if instance.is_held() {
            readiness.clear("instance_lock");
        } else {
            readiness.set(
                "instance_lock",
                "the instance's liveness lock is being taken again",
            );
        }
        if consumers::sleep_or_shutdown(Duration::from_secs(1), &mut shutdown).await {
            return;
        }
    }
}

async fn poll_age_loop(metrics: SyncMetrics, mut shutdown: watch::Receiver<bool>) {
    loop {
        metrics.refresh_poll_age();
        if consumers::sleep_or_shutdown(Duration::from_secs(5), &mut shutdown).await {
            return;
        }
    }
}

/// The sync connector, built and bound, not yet running.
pub struct App {
    connector: Connector,
    listening: Listening,
}

impl App {
    /// Connects (creating the database when missing), migrates, connects NATS, takes the
    /// instance's liveness lock, and binds `config.addr`.
    pub async fn build(config: Config) -> Result<Self, StartError> {
        let pool = startup::open_database(&config.common, config.db_max_connections).await?;
        let nats = platform::nats::connect_common(&config.common, "sync-connector")
            .await
            .map_err(|e| StartError::Nats(e.to_string()))?;
        let listening = Listening::bind(config.addr).await?;
        let connector = Connector::new(config, pool, nats).await?;
        Ok(Self { connector, listening })
    }

    /// Where `/health`, `/ready`, `/metrics` and `POST /1nce/data-streamer` answer.
    pub fn addr(&self) -> SocketAddr {
        self.listening.addr()
    }

    /// The connector's parts (tests reach its poller, metrics and pool through it).
    pub fn connector(&self) -> &Connector {
        &self.connector
    }

    /// Syncs until `shutdown` resolves, then stops the loops (15 s at most).
    pub async fn run_until_stopped(self, shutdown: Shutdown) -> Result<(), StartError> {
        let Self { connector, listening } = self;
        let (stop, stopped) = watch::channel(false);
        let mut tasks = connector.spawn(stopped);
        tracing::info!(
            provider = %connector.config.provider.base_url,
            shard = ?connector.config.shard,
            "sync connector running"
        );
        let app = connector.router();
        let served = listening
            .serve("sync connector's operations endpoints", app, shutdown)
            .await;
        let _ = stop.send(true);
        if tokio::time::timeout(Duration::from_secs(15), async {
            while tasks.join_next().await.is_some() {}
        })
        .await
        .is_err()
        {
            tracing::warn!("connector tasks did not stop in time; aborting them");
            tasks.abort_all();
        }
        served
    }
}

/// `/health`, `/ready` (Postgres, NATS and the instance's liveness lock), `/metrics` and the
/// Data Streamer receiver's `routes`, with the standard layers.
pub fn ops_router(
    routes: Router,
    metrics: Metrics,
    pool: PgPool,
    nats: async_nats::Client,
    readiness: ReadinessFlags,
    sync_metrics: SyncMetrics,
) -> Router {
    // The provider is optional: while 1NCE does not answer the connector backs off and
    // catches up later ("degraded"); it is not a reason to take the instance out of service.
    platform::http::ops_router_with_nats_and(routes, metrics, pool, nats, readiness, move || {
        let available = sync_metrics.provider_available();
        async move { vec![DependencyCheck::optional("provider", available)] }
    })
}
