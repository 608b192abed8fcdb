//! The projectors: durable JetStream consumers that turn the event log into the read models
//! (Postgres) and keep the Redis cache warm; and the rebuild that replays the Postgres log into
//! fresh tables and swaps them in. See `docs/projectors.md`.
//!
//! `main.rs` only reads the configuration and calls [`run`] (or [`rebuild::rebuild`] for
//! `projectors rebuild`). [`run_with`] runs extra background tasks in the same process (the
//! relay), stopped together with the projector.

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

use axum::Router;
use platform::http::ReadinessFlags;
use platform::Metrics;
use readmodel::{Cache, CacheConfig};
use sqlx::PgPool;
use tokio::net::TcpListener;
use tokio::sync::watch;

pub use apply::{Applier, ApplyError, Outcome, UsageRollups, PROJECTION_LOCK_KEY};
pub use config::{Config, ConsumerSettings};
pub use metrics::{ProjectorMetrics, RebuildMetrics};
pub use parking::{replay_parked, ReplayReport};
pub use projector::{Handled, Projector, ProjectorError, ProjectorSettings};
pub use rebuild::{rebuild, ReadModel, RebuildError, RebuildOptions, RebuildReport};

/// Why the service could not start (or stopped).
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot reach the database: {0}")]
    Database(#[from] sqlx::Error),
    #[error(transparent)]
    Prepare(#[from] eventstore::PrepareError),
    #[error("cannot connect to NATS: {0}")]
    Nats(String),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("server error: {0}")]
    Serve(std::io::Error),
    #[error("a background task failed: {0}")]
    Task(String),
}

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

/// A background task for [`run_with`]; an `Err` stops the whole process.
pub type Task = Pin<Box<dyn Future<Output = anyhow::Result<()>> + Send>>;

/// Connects, migrates, serves `/health`, `/ready`, `/metrics` and projects until Ctrl-C or
/// SIGTERM.
pub async fn run(config: Config) -> Result<(), StartError> {
    run_with(config, |_| Vec::new()).await
}

/// [`run`], plus the tasks `extra` builds from the process's [`Services`] (e.g. the relay).
pub async fn run_with<F>(config: Config, extra: F) -> Result<(), StartError>
where
    F: FnOnce(&Services) -> Vec<Task>,
{
    let pool = connect_and_migrate(&config).await?;
    let nats = platform::nats::connect_common(&config.common, "projectors")
        .await
        .map_err(|e| StartError::Nats(e.to_string()))?;
    let cache = Cache::connect(CacheConfig::new(
        &config.common.redis_url,
        &config.redis_key_prefix,
    ))
    .await;
    let metrics = Metrics::new();
    // Fails early (here, not in a task) when the database is not what the projector needs.
    UsageRollups::detect(&pool).await?;
    let partitions = partitions::Partitions::new(
        pool.clone(),
        nats.clone(),
        cache,
        ProjectorMetrics::register(metrics.registry()),
        ProjectorSettings::from_config(&config),
        config.partitions,
    );
    let listener = TcpListener::bind(config.addr)
        .await
        .map_err(|source| StartError::Bind {
            addr: config.addr,
            source,
        })?;
    let (stop, shutdown) = watch::channel(false);
    let readiness = ReadinessFlags::new();
    let services = Services {
        config: config.clone(),
        pool: pool.clone(),
        nats: nats.clone(),
        metrics: metrics.clone(),
        readiness: readiness.clone(),
        shutdown: shutdown.clone(),
    };
    let mut tasks = tokio::task::JoinSet::new();
    {
        let shutdown = shutdown.clone();
        tasks.spawn(async move {
            partitions
                .run(shutdown)
                .await
                .map_err(|e| anyhow::anyhow!("projector: {e}"))
        });
    }
    for task in extra(&services) {
        tasks.spawn(task);
    }
    tracing::info!(addr = %config.addr, stream = %config.stream, projector = %config.projector,
        partitions = config.partitions, "projectors running");
    let app = ops_router(metrics, pool, nats, readiness);
    let outcome = tokio::select! {
        served = platform::http::serve(listener, app) => served.map_err(StartError::Serve),
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

/// `/health`, `/ready` (Postgres, NATS, and the relay's view of the stream), `/metrics`, with
/// the standard layers.
pub fn ops_router(
    metrics: Metrics,
    pool: PgPool,
    nats: async_nats::Client,
    readiness: ReadinessFlags,
) -> Router {
    platform::http::ops_router_with_nats(metrics, pool, nats, readiness)
}

/// Creates the database when missing, connects, and applies pending migrations (or refuses to
/// start when `MIGRATE_ON_START=false` and some are pending).
pub async fn connect_and_migrate(config: &Config) -> Result<PgPool, StartError> {
    platform::db::create_database_if_missing(&config.common.database_url).await?;
    let pool = platform::db::connect(&config.common.database_url, config.db_max_connections).await?;
    eventstore::prepare_database(&pool, config.common.migrate_on_start).await?;
    Ok(pool)
}

/// The relay (Postgres log → JetStream) as a task of this process, so the contract's list of
/// processes stays complete: every projectors replica runs one, and the advisory lock keeps
/// exactly one of them publishing while the others stand by. It connects to NATS as its own
/// user (`RELAY_NATS_USER` / `RELAY_NATS_PASSWORD`, else the process's): only the relay may
/// publish events.
pub fn relay_task(services: &Services) -> Vec<Task> {
    let services = services.clone();
    vec![Box::pin(async move {
        let config = relay::RelayConfig::from_env()?;
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
