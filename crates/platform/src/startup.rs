//! The start path every service shares: open the database (create it when missing, connect,
//! apply pending migrations or refuse to start), bind the listener, then serve until the
//! shutdown future the caller passes resolves.
//!
//! Each service builds on it with one `App::build(config)` → [`std::net::SocketAddr`] →
//! `run_until_stopped(shutdown)`, which `main` runs with [`crate::http::shutdown_signal`]
//! and tests and benches run with a future of their own (as zero-to-production's `startup.rs`
//! and mini-redis's `run(listener, shutdown)` do): the path a test starts is the real one.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;

use sqlx::PgPool;
use tokio::net::TcpListener;

use crate::config::CommonConfig;

/// When a running service stops: Ctrl-C or SIGTERM in `main` ([`on_signal`]), whatever a test
/// decides in tests.
pub type Shutdown = Pin<Box<dyn Future<Output = ()> + Send + 'static>>;

/// Ctrl-C or SIGTERM (what Kubernetes sends before killing a pod): `main`'s [`Shutdown`].
pub fn on_signal() -> Shutdown {
    Box::pin(crate::http::shutdown_signal())
}

/// Why a service could not start, or stopped with an error.
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
    #[error("invalid configuration: {0}")]
    Config(String),
    /// A service's own start-up step failed (the bootstrap admin, the 1NCE client, metrics).
    #[error("cannot start: {0}")]
    Setup(String),
    #[error("server error: {0}")]
    Serve(std::io::Error),
    /// A background task of the service failed (the process stops with it).
    #[error("a background task failed: {0}")]
    Task(String),
}

impl From<eventstore::StoreError> for StartError {
    fn from(error: eventstore::StoreError) -> Self {
        match error {
            eventstore::StoreError::Database(error) => Self::Database(error),
            other => Self::Setup(other.to_string()),
        }
    }
}

/// Creates the database when missing, connects with at most `max_connections`, and applies
/// pending migrations (or refuses to start when `MIGRATE_ON_START=false` and some are pending).
pub async fn open_database(common: &CommonConfig, max_connections: u32) -> Result<PgPool, StartError> {
    crate::db::create_database_if_missing(&common.database_url).await?;
    let pool = crate::db::connect(&common.database_url, max_connections).await?;
    eventstore::prepare_database(&pool, common.migrate_on_start).await?;
    Ok(pool)
}

/// A bound listener: what `App::build` ends with and `run_until_stopped` serves on.
pub struct Listening {
    listener: TcpListener,
    addr: SocketAddr,
}

impl Listening {
    /// Binds `addr` (port 0: any free port; [`Listening::addr`] says which).
    pub async fn bind(addr: SocketAddr) -> Result<Self, StartError> {
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| StartError::Bind { addr, source })?;
        let addr = listener.local_addr().map_err(StartError::Serve)?;
        Ok(Self { listener, addr })
    }

    /// The address bound (the real port when port 0 was asked for).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Serves `app` until `shutdown` resolves, then drains in-flight requests; `service` names
    /// it in the log.
    pub async fn serve(
        self,
        service: &str,
        app: axum::Router,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), StartError> {
        tracing::info!(addr = %self.addr, "{service} listening");
        crate::http::serve(self.listener, app, shutdown)
            .await
            .map_err(StartError::Serve)
    }
}
