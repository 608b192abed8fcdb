use anyhow::Context;
use query_service::{App, Config};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // `query-service openapi`: print the OpenAPI document and exit (no configuration, no database).
    if std::env::args().nth(1).as_deref() == Some("openapi") {
        println!("{}", query_service::openapi::document_json());
        return Ok(());
    }
    let config = Config::from_env().context("invalid configuration")?;
    platform::telemetry::init_tracing("query-service", config.common.log_format);
    App::build(config)
        .await
        .context("query-service could not start")?
        .run_until_stopped(platform::startup::on_signal())
        .await
        .context("query-service stopped")
}
