use anyhow::Context;
use query_service::Config;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config = Config::from_env().context("invalid configuration")?;
    platform::telemetry::init_tracing("query-service", config.common.log_format);
    query_service::run(config).await.context("query-service stopped")
}
