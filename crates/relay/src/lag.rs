//! The relay's lag, as the leader sees it: what is committed and not yet in the stream.
//!
//! Computed from Postgres alone, from the stream position when synced and from the checkpoint
//! otherwise, so it keeps growing while NATS is away or the stream is refused; and it counts
//! committed events above the horizon, so a transaction that holds every reader back shows as a
//! growing age (with the holder's own age beside it), not as zero.

use eventstore::LogCursor;

use crate::checkpoint;
use crate::error::RelayError;
use crate::lock::timed;
use crate::metrics::Lag;
use crate::relay::Relay;

/// `relay_lag_events` counts up to this many events, so the query stays cheap however far
/// behind the relay is.
const LAG_COUNT_BOUND: i64 = 10_000;

impl Relay {
    /// Recomputes the lag metrics (the run loop does it every second).
    pub async fn refresh_lag(&mut self) -> Result<(), RelayError> {
        if self.leadership.is_none() {
            self.metrics.clear_lag();
            return Ok(());
        }
        let limit = self.config.query_timeout;
        let cursor = match self.position {
            Some(position) => position.cursor,
            None => {
                let stream = self.config.stream.clone();
                let pool = self.pool.clone();
                let read = async move {
                    let mut conn = pool.acquire().await?;
                    checkpoint::read(&mut conn, &stream).await
                };
                timed(limit, "checkpoint read", read)
                    .await?
                    .map(|checkpoint| checkpoint.cursor)
                    .unwrap_or(LogCursor::START)
            }
        };
        let backlog = timed(limit, "lag", self.log.backlog(cursor, LAG_COUNT_BOUND)).await?;
        let horizon = timed(limit, "horizon", self.log.horizon_holder_age()).await?;
        self.metrics.set_lag(Lag {
            events: backlog.events,
            seconds: backlog.oldest_age_seconds,
            horizon_holder_seconds: horizon,
        });
        Ok(())
    }
}
