//! The command API: operators' commands to the SIM, quota and SMS aggregates, and the
//! accounts (users, API keys, tokens) that authorise them.
//!
//! `main.rs` only reads the configuration and calls [`run`]; tests build the same router with
//! [`router`] and serve it on a random port.

pub mod accounts;
mod commands;
pub mod config;
mod error;
mod openapi;
mod routes;
mod state;

use std::net::SocketAddr;

use tokio::net::TcpListener;

pub use config::Config;
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
    #[error("cannot create the bootstrap admin: {0}")]
    Bootstrap(String),
    #[error("server error: {0}")]
    Serve(std::io::Error),
}

/// Connects, migrates, creates the bootstrap admin, and serves until Ctrl-C or SIGTERM.
pub async fn run(config: Config) -> Result<(), StartError> {
    platform::db::create_database_if_missing(&config.common.database_url).await?;
    let pool = platform::db::connect(&config.common.database_url, config.db_max_connections).await?;
    eventstore::prepare_database(&pool, config.common.migrate_on_start).await?;
    let mut state = AppState::new(&config, pool).map_err(|e| StartError::Config(e.to_string()))?;
    // Connects in the background: the API serves commands while NATS is away.
    state.nats = platform::nats::connect_common(&config.common, "command-service")
        .await
        .map_err(
            |error| tracing::warn!(%error, "no NATS connection; sync jobs wait for the connector's own look"),
        )
        .ok();
    if let Some((username, password)) = &config.bootstrap_admin {
        state
            .bootstrap_admin(username, password)
            .await
            .map_err(StartError::Bootstrap)?;
    }
    let listener = TcpListener::bind(config.addr)
        .await
        .map_err(|source| StartError::Bind {
            addr: config.addr,
            source,
        })?;
    tracing::info!(addr = %config.addr, "command API listening");
    platform::http::serve(listener, router(state))
        .await
        .map_err(StartError::Serve)
}

/// The whole HTTP surface, with the standard layers (request ids, error shape, metrics).
pub fn router(state: AppState) -> axum::Router {
    routes::router(state)
}
