//! The command API: operators' commands to the SIM, quota and SMS aggregates, and the
//! accounts (users, API keys, tokens) that authorise them.
//!
//! `main.rs` reads the configuration and runs [`App`]: `App::build(config)` (database, NATS,
//! bootstrap admin, listener) → [`App::addr`] → [`App::run_until_stopped`]. Tests and benches
//! start the same `App` (through `testkit`) with a shutdown of their own.

mod actions;
mod backlog_metrics;
mod browser_session;
mod bulk;
mod commands;
pub mod config;
mod error;
pub mod openapi;
mod routes;
mod rules;
mod state;
mod webhooks;

use std::net::SocketAddr;

use platform::startup::{self, Listening, Shutdown, StartError};

pub use bulk::BulkSettings;
pub use config::Config;
pub use rules::RuleSettings;
pub use state::AppState;
pub use webhooks::WebhookSettings;

/// The command API, built and bound, not yet serving.
pub struct App {
    listening: Listening,
    state: AppState,
    backlog_metrics: backlog_metrics::BacklogMetrics,
    backlog_metrics_interval: std::time::Duration,
}

impl App {
    /// Connects (creating the database when missing), migrates, connects NATS in the
    /// background, creates the bootstrap admin when no user exists, and binds `config.addr`.
    pub async fn build(config: Config) -> Result<Self, StartError> {
        let pool = startup::open_database(&config.common, config.db_max_connections).await?;
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
                .map_err(StartError::Setup)?;
        }
        let backlog_metrics = backlog_metrics::BacklogMetrics::register(state.metrics.registry())
            .map_err(|error| StartError::Setup(format!("backlog metrics: {error}")))?;
        let listening = Listening::bind(config.addr).await?;
        Ok(Self {
            listening,
            state,
            backlog_metrics,
            backlog_metrics_interval: config.backlog_metrics_interval,
        })
    }

    /// Where it listens (the real port when `COMMAND_ADDR` asked for port 0).
    pub fn addr(&self) -> SocketAddr {
        self.listening.addr()
    }

    /// What the handlers share (tests reach the pool and the accounts through it).
    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Serves, and runs the bulk worker (unless `BULK_WORKER=false`), the webhook dispatcher
    /// (unless `WEBHOOK_WORKER=false`) and the rule engine (unless `RULE_ENGINE=false`), until `shutdown` resolves; then drains
    /// in-flight requests and lets them finish their current item or delivery.
    pub async fn run_until_stopped(self, shutdown: Shutdown) -> Result<(), StartError> {
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let backlog = tokio::spawn(
            self.backlog_metrics
                .run(self.state.pool.clone(), self.backlog_metrics_interval),
        );
        let worker = self
            .state
            .bulk
            .worker
            .then(|| tokio::spawn(bulk::worker::Worker::new(self.state.clone()).run(stopped)));
        let dispatcher = match self.state.webhooks.worker {
            true => {
                let dispatcher = webhooks::dispatcher::Dispatcher::new(
                    self.state.pool.clone(),
                    self.state.webhooks.clone(),
                    self.state.webhook_deliveries_total.clone(),
                )
                .map_err(|error| StartError::Setup(format!("webhook HTTP client: {error}")))?;
                Some(tokio::spawn(dispatcher.run(stop.subscribe())))
            }
            false => None,
        };
        let engine = self
            .state
            .rules
            .engine
            .then(|| tokio::spawn(rules::engine::Engine::new(self.state.clone()).run(stop.subscribe())));
        let serving: Shutdown = Box::pin(async move {
            shutdown.await;
            let _ = stop.send(true);
        });
        let served = self
            .listening
            .serve("command API", routes::router(self.state), serving)
            .await;
        if let Some(worker) = worker {
            // The stop was sent, or its sender dropped when serving ended early.
            if let Err(error) = worker.await {
                tracing::error!(%error, "the bulk worker ended abnormally");
            }
        }
        if let Some(engine) = engine {
            if let Err(error) = engine.await {
                tracing::error!(%error, "the rule engine ended abnormally");
            }
        }
        if let Some(dispatcher) = dispatcher {
            if let Err(error) = dispatcher.await {
                tracing::error!(%error, "the webhook dispatcher ended abnormally");
            }
        }
        backlog.abort();
        served
    }
}
