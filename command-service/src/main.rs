use anyhow::Context;
use command_service::Config;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config = Config::from_env().context("invalid configuration")?;
    platform::telemetry::init_tracing("command-service", config.common.log_format);
    command_service::run(config)
        .await
        .context("command-service stopped")
}
