//! `projection_lag_events`, `projection_lag_seconds` and `projector_parked_events`, from
//! Postgres alone, every second.

use std::time::Duration;

use eventstore::{GlobalLog, LogCursor};
use tokio::sync::watch;

use super::{sleep_or_shutdown, Projector};
use crate::checkpoint;

/// `projection_lag_events` counts up to this many events, so the query stays cheap.
const LAG_COUNT_BOUND: i64 = 100_000;

impl Projector {
    /// `projection_lag_events` / `projection_lag_seconds` (what is committed after the
    /// checkpoint, including events held behind an open transaction) and
    /// `projector_parked_events`, every second, from Postgres alone: they keep moving while
    /// NATS is away.
    pub(super) async fn refresh_lag_forever(self, mut shutdown: watch::Receiver<bool>) {
        loop {
            if let Err(error) = self.refresh_lag().await {
                tracing::debug!(%error, "cannot compute the projection lag");
            }
            if sleep_or_shutdown(Duration::from_secs(1), &mut shutdown).await {
                return;
            }
        }
    }

    pub(super) async fn refresh_lag(&self) -> Result<(), anyhow::Error> {
        let name = self.follower.checkpoint.as_str();
        let checkpoint = checkpoint::read(&mut *self.pool.acquire().await?, name).await?;
        let cursor = checkpoint.map(|c| c.cursor).unwrap_or(LogCursor::START);
        let backlog = GlobalLog::new(self.pool.clone())
            .backlog(cursor, LAG_COUNT_BOUND)
            .await?;
        self.metrics.set_lag(name, &backlog);
        // Parked events are the projector's (all partitions'), as its versions are.
        let group = self.settings.name.as_str();
        let parked = crate::parking::parked_count(&self.pool, group).await?;
        self.metrics.parked.with_label_values(&[group]).set(parked);
        Ok(())
    }
}
