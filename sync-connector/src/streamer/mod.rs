//! The 1NCE Data Streamer receiver: `POST /1nce/data-streamer` stores each batch's records in
//! the inbox (`streamer_records`) in one transaction and answers 200 only then; the applier, a
//! loop of the connector, turns them into commands exactly once. Records of SIMs the platform
//! does not know wait (`pending`) until the SIM is registered. See docs/sync-connector.md.

pub mod apply;
mod fields;
pub mod inbox;
pub mod metrics;
pub mod receive;
pub mod record;

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{watch, Notify};

use crate::config::StreamerConfig;

pub use apply::Applier;
pub use inbox::Inbox;
pub use metrics::StreamerMetrics;
pub use receive::Receiver;

/// What wakes the applier: a batch stored, a SIM registered.
#[derive(Clone, Default)]
pub struct WakeUps {
    pub stored: Arc<Notify>,
    pub registered: Arc<Notify>,
}

/// SIMs with pending records looked at per round.
const PENDING_SIMS_PER_ROUND: i64 = 500;
/// How often settled records past the retention are deleted, and how many rows at a time.
const CLEANUP_EVERY: Duration = Duration::from_secs(3600);
const CLEANUP_ROWS: i64 = 10_000;

/// Applies the inbox until `shutdown`; every record stored is applied, including the ones a
/// previous run left (they are still `received`).
pub async fn apply_loop(
    applier: Applier,
    wake_ups: WakeUps,
    config: StreamerConfig,
    metrics: StreamerMetrics,
    mut shutdown: watch::Receiver<bool>,
) {
    if let Ok(newest) = applier.inbox().newest().await {
        for (stream, at) in newest {
            metrics.saw(&stream, at);
        }
    }
    let mut last_recheck = Instant::now();
    let mut recheck = true;
    let mut last_cleanup: Option<Instant> = None;
    loop {
        if *shutdown.borrow() {
            return;
        }
        if last_cleanup.is_none_or(|at| at.elapsed() >= CLEANUP_EVERY) {
            last_cleanup = Some(Instant::now());
            let before =
                chrono::Utc::now() - chrono::Duration::from_std(config.retention).unwrap_or_default();
            match applier.inbox().forget_settled(before, CLEANUP_ROWS).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(rows = n, "settled streamed records past their retention deleted"),
                Err(error) => tracing::warn!(%error, "settled streamed records could not be deleted"),
            }
        }
        if recheck || last_recheck.elapsed() >= config.pending_recheck {
            recheck = false;
            last_recheck = Instant::now();
            match applier.release_registered(PENDING_SIMS_PER_ROUND).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(records = n, "streamed records of newly registered SIMs released"),
                Err(error) => tracing::warn!(%error, "pending streamed records could not be looked at"),
            }
        }
        metrics.refresh_ages();
        let applied = tokio::select! {
            applied = applier.apply_waiting() => applied,
            _ = shutdown.changed() => return,
        };
        let pause = match applied {
            Ok(0) => Duration::from_secs(1),
            Ok(_) => continue,
            Err(error) => {
                tracing::warn!(%error, "streamed records could not be applied; retrying");
                Duration::from_secs(1)
            }
        };
        tokio::select! {
            _ = wake_ups.stored.notified() => {}
            _ = wake_ups.registered.notified() => recheck = true,
            _ = tokio::time::sleep(pause) => {}
            _ = shutdown.changed() => return,
        }
    }
}
