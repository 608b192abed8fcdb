use anyhow::Context;
use sync_connector::Config;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config = Config::from_env().context("invalid configuration")?;
    platform::telemetry::init_tracing("sync-connector", config.common.log_format);
    sync_connector::run(config)
        .await
        .context("sync connector stopped")
}
