use anyhow::Context;
use sync_connector::{App, Config};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config = Config::from_env().context("invalid configuration")?;
    platform::telemetry::init_tracing("sync-connector", config.common.log_format);
    App::build(config)
        .await
        .context("sync connector could not start")?
        .run_until_stopped(platform::startup::on_signal())
        .await
        .context("sync connector stopped")
}
