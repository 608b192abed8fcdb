//! `once-simulator`: the local 1NCE Management API as a process (the platform's default provider).

use std::net::SocketAddr;

use anyhow::Context;
use once_simulator::{App, SimulatorConfig};
use platform::config::LogFormat;

const DEFAULT_ADDR: &str = "127.0.0.1:8090";

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let log_format = match std::env::var("LOG_FORMAT").ok().as_deref().map(str::trim) {
        Some("pretty") => LogFormat::Pretty,
        _ => LogFormat::Json,
    };
    platform::telemetry::init_tracing("once-simulator", log_format);
    let config = SimulatorConfig::from_env().context("invalid configuration")?;
    let addr: SocketAddr = std::env::var("SIMULATOR_ADDR")
        .ok()
        .filter(|v| !v.trim().is_empty())
        .unwrap_or_else(|| DEFAULT_ADDR.to_owned())
        .trim()
        .parse()
        .context("invalid SIMULATOR_ADDR")?;
    tracing::info!(?config, %addr, "starting the 1NCE simulator");
    App::build(config, addr)
        .await
        .context("once-simulator could not start")?
        .run_until_stopped(platform::startup::on_signal())
        .await
        .context("once-simulator stopped")
}
