use anyhow::Context;
use projectors::{App, Config, ReadModel, RebuildMetrics, RebuildOptions};

const USAGE: &str = "usage: projectors [run]
       projectors rebuild [--model sims,quotas,sms,usage,fleet] [--batch-size N] [--in-batches]
       projectors replay-parked
       projectors relay verify [--full]
       projectors relay reset-stream --yes

  run             the projector and the relay (RELAY_ENABLED=false: the projector alone)
  rebuild         replays the event log into fresh read-model tables and swaps them in
                  (--model: only these read models, up to the live projector's checkpoint;
                  --in-batches: a transaction per batch instead of the bulk load)
  replay-parked   applies parked events again (events the projector could not apply)
  relay verify    compares the stream with the event store (its last message; --full: every
                  message); exit status 1 when they do not match
  relay reset-stream
                  deletes the stream (its messages, consumers and remembered message ids) and
                  lets the active relay publish the whole event store into a fresh one";

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config = Config::from_env().context("invalid configuration")?;
    platform::telemetry::init_tracing("projectors", config.common.log_format);
    let args: Vec<String> = std::env::args().skip(1).collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    match args.as_slice() {
        // RELAY_ENABLED=false runs the projector alone (the relay then runs elsewhere).
        [] | ["run"] => {
            let app = App::build(config).await.context("projectors could not start")?;
            // RELAY_ENABLED=false runs the projector alone (the relay then runs elsewhere).
            let app = if std::env::var("RELAY_ENABLED").is_ok_and(|v| v == "false") {
                app
            } else {
                app.with_tasks(projectors::relay_task)
            };
            app.run_until_stopped(platform::startup::on_signal())
                .await
                .context("projectors stopped")
        }
        ["rebuild", rest @ ..] => {
            let mut options = RebuildOptions::new(config.projector.clone());
            options.max_rows_in_memory = config.rebuild_max_rows;
            let mut rest = rest;
            while !rest.is_empty() {
                rest = match rest {
                    ["--batch-size", n, more @ ..] => {
                        options.batch_size = n.parse().ok().filter(|n: &i64| *n > 0).context(USAGE)?;
                        more
                    }
                    ["--model", names, more @ ..] => {
                        for name in names.split(',') {
                            let model = ReadModel::parse(name.trim())
                                .with_context(|| format!("unknown read model {name:?}\n{USAGE}"))?;
                            options.models.push(model);
                        }
                        more
                    }
                    ["--in-batches", more @ ..] => {
                        options.method = projectors::rebuild::Method::Batches;
                        more
                    }
                    _ => anyhow::bail!(USAGE),
                };
            }
            let metrics = platform::Metrics::new();
            options.metrics = Some(RebuildMetrics::register(metrics.registry()));
            let pool = projectors::open_database(&config).await?;
            let report = projectors::rebuild(&pool, &options)
                .await
                .context("rebuild failed")?;
            println!("{}", serde_json::to_string_pretty(&report)?);
            Ok(())
        }
        ["replay-parked"] => {
            let pool = projectors::open_database(&config).await?;
            let report = projectors::replay_parked(&pool, &config.projector)
                .await
                .context("replaying parked events failed")?;
            refresh_cache(&config, &pool, &report.iccids).await;
            println!("{}", serde_json::to_string_pretty(&report)?);
            Ok(())
        }
        ["relay", "verify", rest @ ..] => {
            let full = match rest {
                [] => false,
                ["--full"] => true,
                _ => anyhow::bail!(USAGE),
            };
            let (pool, nats, relay_config) = relay_admin(&config).await?;
            let report = relay::admin::verify(&pool, nats, &relay_config, full)
                .await
                .context("cannot verify the stream")?;
            println!("{}", serde_json::to_string_pretty(&report)?);
            if !report.ok() {
                std::process::exit(1);
            }
            Ok(())
        }
        ["relay", "reset-stream", "--yes"] => {
            let (pool, nats, relay_config) = relay_admin(&config).await?;
            let report = relay::admin::reset_stream(&pool, nats, &relay_config)
                .await
                .context("cannot reset the stream")?;
            println!("{}", serde_json::to_string_pretty(&report)?);
            Ok(())
        }
        ["relay", "reset-stream"] => anyhow::bail!(
            "reset-stream deletes the stream, its consumers (downstream ones too) and its \
             messages, and republishes the whole event store; run it again with --yes"
        ),
        ["-h" | "--help" | "help"] => {
            println!("{USAGE}");
            Ok(())
        }
        _ => anyhow::bail!("unknown command {:?}\n{USAGE}", args.join(" ")),
    }
}

/// The database, the relay's NATS connection (its credentials may manage the stream) and the
/// relay's settings, for the operator's commands.
async fn relay_admin(
    config: &Config,
) -> anyhow::Result<(sqlx::PgPool, async_nats::Client, relay::RelayConfig)> {
    let pool = projectors::open_database(config).await?;
    let nats = projectors::relay_connection(config).await?;
    // The first connection is made in the background; wait for it, boundedly.
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    while nats.connection_state() != async_nats::connection::State::Connected {
        anyhow::ensure!(
            tokio::time::Instant::now() < deadline,
            "cannot reach NATS at {} within 10 s",
            platform::config::redact_url(&config.common.nats_url)
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    Ok((pool, nats, config.relay.clone()))
}

/// After a replay, the touched SIMs' cache entries (best effort: the cache is only a cache).
async fn refresh_cache(config: &Config, pool: &sqlx::PgPool, iccids: &[String]) {
    let cache = readmodel::Cache::connect(readmodel::CacheConfig::new(
        &config.common.redis_url,
        &config.redis_key_prefix,
    ))
    .await;
    for iccid in iccids {
        match readmodel::load_sim(pool, iccid).await {
            Ok(Some(view)) => cache.put_sim(&view).await,
            _ => cache.invalidate(&[cache.sim_key(iccid)]).await,
        }
    }
    cache.invalidate(&[cache.fleet_summary_key()]).await;
}
