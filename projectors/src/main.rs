use anyhow::Context;
use projectors::{Config, RebuildMetrics, RebuildOptions};

const USAGE: &str = "usage: projectors [run | rebuild [--batch-size N]]";

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config = Config::from_env().context("invalid configuration")?;
    platform::telemetry::init_tracing("projectors", config.common.log_format);
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        // RELAY_ENABLED=false runs the projector alone (the relay then runs elsewhere).
        None | Some("run") if std::env::var("RELAY_ENABLED").is_ok_and(|v| v == "false") => {
            projectors::run(config).await.context("projectors stopped")
        }
        None | Some("run") => projectors::run_with(config, projectors::relay_task)
            .await
            .context("projectors stopped"),
        Some("rebuild") => {
            let mut options = RebuildOptions::new(config.projector.clone());
            match args.get(1).map(String::as_str) {
                None => {}
                Some("--batch-size") => {
                    options.batch_size = args
                        .get(2)
                        .and_then(|n| n.parse().ok())
                        .filter(|n: &i64| *n > 0)
                        .context(USAGE)?;
                }
                Some(_) => anyhow::bail!(USAGE),
            }
            let metrics = platform::Metrics::new();
            options.metrics = Some(RebuildMetrics::register(metrics.registry()));
            let pool = projectors::connect_and_migrate(&config).await?;
            let report = projectors::rebuild(&pool, &options)
                .await
                .context("rebuild failed")?;
            println!("{}", serde_json::to_string_pretty(&report)?);
            Ok(())
        }
        Some("-h" | "--help" | "help") => {
            println!("{USAGE}");
            Ok(())
        }
        Some(other) => anyhow::bail!("unknown command {other:?}; {USAGE}"),
    }
}
