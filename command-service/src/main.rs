use anyhow::Context;
use command_service::{App, Config};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // `command-service openapi`: print the OpenAPI document and exit (no configuration, no database).
    if std::env::args().nth(1).as_deref() == Some("openapi") {
        println!("{}", command_service::openapi::document_json());
        return Ok(());
    }
    let config = Config::from_env().context("invalid configuration")?;
    platform::telemetry::init_tracing("command-service", config.common.log_format);
    App::build(config)
        .await
        .context("command-service could not start")?
        .run_until_stopped(platform::startup::on_signal())
        .await
        .context("command-service stopped")
}
