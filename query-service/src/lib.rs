//! The query API: SIMs, quotas, SMS and usage from the read models (Redis in front of the
//! SIM rows and the fleet summary), and the event store itself for a SIM's audit history, its
//! state at any past instant, and the global feed downstream systems backfill from.
//!
//! `main.rs` reads the configuration and runs [`App`]: `App::build(config)` (database, cache,
//! listener) → [`App::addr`] → [`App::run_until_stopped`]. Tests and benches start the same
//! `App` (through `testkit`) with a shutdown of their own.

pub mod config;
mod consistency;
mod fleet_metrics;
pub mod openapi;
mod params;
mod routes;
mod state;

use std::net::SocketAddr;

use platform::startup::{self, Listening, Shutdown, StartError};

pub use config::Config;
pub use consistency::CONSISTENCY_TOKEN;
pub use state::AppState;

/// The query API, built and bound, not yet serving.
pub struct App {
    listening: Listening,
    state: AppState,
    fleet_metrics: fleet_metrics::FleetMetrics,
    fleet_metrics_interval: std::time::Duration,
}

impl App {
    /// Connects (creating the database when missing), migrates, connects the cache (or runs
    /// without it until Redis answers), and binds `config.addr`.
    pub async fn build(config: Config) -> Result<Self, StartError> {
        let pool = startup::open_database(&config.common, config.db_max_connections).await?;
        let cache = readmodel::Cache::connect(config.cache_config()).await;
        Self::build_with_cache(config, pool, cache).await
    }

    /// [`App::build`] on a pool and cache of the caller's (a bench serving one database with
    /// the cache on and off).
    pub async fn build_with_cache(
        config: Config,
        pool: sqlx::PgPool,
        cache: readmodel::Cache,
    ) -> Result<Self, StartError> {
        let state = AppState::new(&config, pool, cache).map_err(|e| StartError::Config(e.to_string()))?;
        let fleet_metrics = fleet_metrics::FleetMetrics::register(state.metrics.registry())
            .map_err(|e| StartError::Setup(e.to_string()))?;
        let listening = Listening::bind(config.addr).await?;
        Ok(Self {
            listening,
            state,
            fleet_metrics,
            fleet_metrics_interval: config.fleet_metrics_interval,
        })
    }

    /// Where it listens (the real port when `QUERY_ADDR` asked for port 0).
    pub fn addr(&self) -> SocketAddr {
        self.listening.addr()
    }

    /// What the handlers share (tests reach the cache and the authenticator through it).
    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Serves until `shutdown` resolves, then drains in-flight requests.
    pub async fn run_until_stopped(self, shutdown: Shutdown) -> Result<(), StartError> {
        let fleet = tokio::spawn(
            self.fleet_metrics
                .run(self.state.pool.clone(), self.fleet_metrics_interval),
        );
        let served = self
            .listening
            .serve("query API", routes::router(self.state), shutdown)
            .await;
        fleet.abort();
        served
    }
}
