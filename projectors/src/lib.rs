//! The projectors: durable JetStream consumers that turn the event log into the read models
//! (Postgres) and keep the Redis cache warm; and the rebuild that replays the Postgres log into
//! fresh tables and swaps them in. See `docs/projectors.md`.
//!
//! `main.rs` reads the configuration and runs [`App`] (`App::build(config)` → [`App::addr`] →
//! [`App::run_until_stopped`]), with the relay added by [`App::with_tasks`]; or an operator
//! command ([`rebuild::rebuild`] for `projectors rebuild`, …). Tests start the same `App`.

pub mod apply;
pub mod checkpoint;
pub mod config;
pub(crate) mod fold;
pub mod follow;
pub mod metrics;
pub mod parking;
pub mod partitions;
pub mod projector;
pub mod rebuild;
pub mod rollup_refresh;

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::time::Duration;

use platform::http::ReadinessFlags;
use platform::readiness::DependencyCheck;
use platform::startup::{self, Listening, Shutdown};
use platform::Metrics;
use readmodel::{Cache, CacheConfig};
use sqlx::PgPool;
use tokio::sync::watch;

pub use apply::{Applier, ApplyError, Outcome, UsageRollups, PROJECTION_LOCK_KEY};
pub use config::{Config, ConsumerSettings};
pub use fold::replay::{replay, Replayed, UsageSums};
pub use metrics::{ProjectorMetrics, RebuildMetrics};
pub use parking::{replay_parked, ReplayReport};
pub use projector::{BatchOutcome, Projector, ProjectorError, ProjectorSettings};
pub use rebuild::{rebuild, ReadModel, RebuildError, RebuildOptions, RebuildReport};

pub use platform::StartError;

/// What a task run beside the projector gets: the shared connections, the service's metrics
/// registry, and the shutdown signal (true once the process stops).
#[derive(Clone)]
pub struct Services {
    pub config: Config,
    pub pool: PgPool,
    pub nats: async_nats::Client,
    pub metrics: Metrics,
    /// What the tasks report against the process's `/ready` (the relay's stream mismatch).
    pub readiness: ReadinessFlags,
    pub shutdown: watch::Receiver<bool>,
}

/// A background task for [`App::with_tasks`]; an `Err` stops the whole process.
pub type Task = Pin<Box<dyn Future<Output = anyhow::Result<()>> + Send>>;

/// Builds the tasks run beside the projector from the process's [`Services`].
type TaskBuilder = Box<dyn FnOnce(&Services) -> Vec<Task> + Send>;

/// The projectors process, built and bound, not yet running: the partitions of the live
/// projector, `/health`, `/ready`, `/metrics`, and any tasks added (the relay, in `main`).
pub struct App {
    config: Config,
    pool: PgPool,
    nats: async_nats::Client,
    cache: Cache,
    metrics: Metrics,
    readiness: ReadinessFlags,
    listening: Listening,
    tasks: Vec<TaskBuilder>,
}

impl App {
    /// Connects (creating the database when missing), migrates, connects NATS and the cache
    /// (or runs without it until Redis answers), checks the read models' storage, and binds
    /// `config.addr`.
    pub async fn build(config: Config) -> Result<Self, StartError> {
        let pool = open_database(&config).await?;
        let nats = platform::nats::connect_common(&config.common, "projectors")
            .await
            .map_err(|e| StartError::Nats(e.to_string()))?;
        let cache = Cache::connect(CacheConfig::new(
            &config.common.redis_url,
            &config.redis_key_prefix,
        ))
        .await;
        // Fails early (here, not in a task) when the database is not what the projector needs.
        UsageRollups::detect(&pool).await?;
        let listening = Listening::bind(config.addr).await?;
        Ok(Self {
            config,
            pool,
            nats,
            cache,
            metrics: Metrics::new(),
            readiness: ReadinessFlags::new(),
            listening,
            tasks: Vec::new(),
        })
    }

    /// Runs the tasks `build` makes from the process's [`Services`] beside the projector
    /// (e.g. [`relay_task`]); they stop with it, and one that fails stops the process.
    pub fn with_tasks(mut self, build: impl FnOnce(&Services) -> Vec<Task> + Send + 'static) -> Self {
        self.tasks.push(Box::new(build));
        self
    }

    /// Where `/health`, `/ready` and `/metrics` answer.
    pub fn addr(&self) -> SocketAddr {
        self.listening.addr()
    }

    /// Projects (and runs the added tasks) until `shutdown` resolves or a task fails, then
    /// stops the tasks (15 s at most) and returns.
    pub async fn run_until_stopped(self, shutdown: Shutdown) -> Result<(), StartError> {
        let Self {
            config,
            pool,
            nats,
            cache,
            metrics,
            readiness,
            listening,
            tasks: builders,
        } = self;
        let cache_check = cache.clone();
        let projector_metrics = ProjectorMetrics::register(metrics.registry());
        // The stream from the start; each partition's consumer once its projector runs.
        projector_metrics.jetstream.track_stream(&config.stream);
        let presence = projector_metrics.jetstream.clone();
        let partitions = partitions::Partitions::new(
            pool.clone(),
            nats.clone(),
            cache,
            projector_metrics,
            ProjectorSettings::from_config(&config),
            config.partitions,
        );
        let (stop, stopped) = watch::channel(false);
        let services = Services {
            config: config.clone(),
            pool: pool.clone(),
            nats: nats.clone(),
            metrics: metrics.clone(),
            readiness: readiness.clone(),
            shutdown: stopped.clone(),
        };
        let mut tasks = tokio::task::JoinSet::new();
        let watch_stopped = stopped.clone();
        let jetstream = async_nats::jetstream::new(nats.clone());
        tasks.spawn(async move {
            presence.run(jetstream, watch_stopped).await;
            Ok(())
        });
        tasks.spawn(async move {
            partitions
                .run(stopped)
                .await
                .map_err(|e| anyhow::anyhow!("projector: {e}"))
        });
        for build in builders {
            for task in build(&services) {
                tasks.spawn(task);
            }
        }
        tracing::info!(stream = %config.stream, projector = %config.projector,
            partitions = config.partitions, "projectors running");
        // `/health`, `/ready` (Postgres, NATS, and the relay's view of the stream), `/metrics`,
        // with the standard layers.
        // The cache is optional: without Redis the read models are still written ("degraded").
        let app = platform::http::ops_router_with_nats(metrics, pool, nats, readiness, move || {
            let cache = cache_check.clone();
            async move { vec![DependencyCheck::optional("redis", cache.ping().await)] }
        });
        let outcome = tokio::select! {
            served = listening.serve("projectors' operations endpoints", app, shutdown) => served,
            failed = first_failure(&mut tasks) => Err(StartError::Task(failed)),
        };
        let _ = stop.send(true);
        let drained = tokio::time::timeout(Duration::from_secs(15), async {
            while let Some(done) = tasks.join_next().await {
                if let Ok(Err(error)) = done {
                    tracing::warn!(%error, "task stopped with an error");
                }
            }
        })
        .await;
        if drained.is_err() {
            tracing::warn!("background tasks did not stop in time; aborting them");
            tasks.abort_all();
        }
        outcome
    }
}

/// Resolves with the first task error; pending forever while tasks run or end cleanly.
async fn first_failure(tasks: &mut tokio::task::JoinSet<anyhow::Result<()>>) -> String {
    loop {
        match tasks.join_next().await {
            Some(Ok(Ok(()))) => continue,
            Some(Ok(Err(error))) => return format!("{error:#}"),
            Some(Err(join)) => return join.to_string(),
            None => std::future::pending::<()>().await,
        }
    }
}

/// The database of the operator commands (`rebuild`, `replay-parked`, `relay …`): created when
/// missing and migrated, as the service itself does at start.
pub async fn open_database(config: &Config) -> Result<PgPool, StartError> {
    startup::open_database(&config.common, config.db_max_connections).await
}

/// The relay (Postgres log → JetStream) as a task of this process, so the contract's list of
/// processes stays complete: every projectors replica runs one, and the advisory lock keeps
/// exactly one of them publishing while the others stand by. It connects to NATS as its own
/// user (`RELAY_NATS_USER` / `RELAY_NATS_PASSWORD`, else the process's): only the relay may
/// publish events.
pub fn relay_task(services: &Services) -> Vec<Task> {
    let services = services.clone();
    vec![Box::pin(async move {
        let config = services.config.relay.clone();
        let nats = relay_connection(&services.config).await?;
        let relay = relay::Relay::new(config, services.pool.clone(), nats, services.metrics.registry())?
            .with_readiness(services.readiness.clone());
        let mut shutdown = services.shutdown.clone();
        relay
            .run(async move { projector::wait_for(&mut shutdown).await })
            .await;
        Ok(())
    })]
}

/// The relay's own NATS connection: `RELAY_NATS_*` credentials when set, else the process's.
pub async fn relay_connection(config: &Config) -> anyhow::Result<async_nats::Client> {
    let credentials = config
        .relay_nats_credentials
        .clone()
        .or(&config.common.nats_credentials);
    Ok(platform::nats::connect(&config.common.nats_url, &credentials, "relay").await?)
}
