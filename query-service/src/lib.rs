//! The query API: SIMs, quotas, SMS and usage from the read models (Redis in front of the
//! SIM rows and the fleet summary), and the event store itself for a SIM's audit history, its
//! state at any past instant, and the global feed downstream systems backfill from.
//!
//! `main.rs` only reads the configuration and calls [`run`]; tests build the same router with
//! [`router`] and serve it on a random port.

pub mod config;
mod consistency;
pub mod openapi;
mod params;
mod routes;
mod state;

use std::net::SocketAddr;

use tokio::net::TcpListener;

pub use config::Config;
pub use consistency::CONSISTENCY_TOKEN;
pub use state::AppState;

/// Why the service could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot reach the database: {0}")]
    Database(#[from] sqlx::Error),
    #[error(transparent)]
    Prepare(#[from] eventstore::PrepareError),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("invalid configuration: {0}")]
    Config(String),
    #[error("server error: {0}")]
    Serve(std::io::Error),
}

/// Connects, migrates, connects the cache (or runs without it), and serves until Ctrl-C or
/// SIGTERM.
pub async fn run(config: Config) -> Result<(), StartError> {
    platform::db::create_database_if_missing(&config.common.database_url).await?;
    let pool = platform::db::connect(&config.common.database_url, config.db_max_connections).await?;
    eventstore::prepare_database(&pool, config.common.migrate_on_start).await?;
    let cache = readmodel::Cache::connect(config.cache_config()).await;
    let state = AppState::new(&config, pool, cache).map_err(|e| StartError::Config(e.to_string()))?;
    let listener = TcpListener::bind(config.addr)
        .await
        .map_err(|source| StartError::Bind {
            addr: config.addr,
            source,
        })?;
    tracing::info!(addr = %config.addr, "query API listening");
    platform::http::serve(listener, router(state))
        .await
        .map_err(StartError::Serve)
}

/// The whole HTTP surface, with the standard layers (request ids, error shape, metrics).
pub fn router(state: AppState) -> axum::Router {
    routes::router(state)
}
