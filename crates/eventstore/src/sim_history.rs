//! One SIM's slice of the log, for the auditors' routes (`GET /sims/{iccid}/events`, `…/state`):
//! the event store owns the SQL of its table; readers ask it.

use chrono::{DateTime, Utc};
use sqlx::PgConnection;

use crate::error::StoreError;
use crate::log::{GlobalLog, LogCursor};
use crate::store::{EventRow, SELECT_EVENT};
use crate::stored::StoredEvent;

impl GlobalLog {
    /// Up to `limit` events of the SIM `iccid` (its own, its quotas' and its messages'), after
    /// `after`, in the global order and below the horizon, like [`GlobalLog::read_after`].
    pub async fn sim_events_after(
        &self,
        iccid: &str,
        after: LogCursor,
        limit: i64,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        let rows: Vec<EventRow> = sqlx::query_as(&format!(
            "{SELECT_EVENT} \
             WHERE iccid = $1 AND (transaction_id, position) > ($2::text::xid8, $3) \
               AND transaction_id < (SELECT event_log_horizon()) \
             ORDER BY transaction_id, position LIMIT $4"
        ))
        .bind(iccid)
        .bind(after.transaction_id.to_string())
        .bind(after.position)
        .bind(limit)
        .fetch_all(self.pool())
        .await?;
        Ok(rows.into_iter().map(StoredEvent::from).collect())
    }

    /// Whether any event concerns the SIM `iccid` (committed; the horizon does not matter).
    pub async fn sim_has_events(&self, iccid: &str) -> Result<bool, StoreError> {
        Ok(
            sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM events WHERE iccid = $1)")
                .bind(iccid)
                .fetch_one(self.pool())
                .await?,
        )
    }

    /// The SIM's and its quotas' events recorded at or before `as_of`, in the global order:
    /// what its state at that instant is replayed from.
    pub async fn sim_state_events_until(
        &self,
        iccid: &str,
        as_of: DateTime<Utc>,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        let rows: Vec<EventRow> = sqlx::query_as(&format!(
            "{SELECT_EVENT} \
             WHERE iccid = $1 AND recorded_at <= $2 AND aggregate_type IN ('sim', 'quota') \
             ORDER BY transaction_id, position"
        ))
        .bind(iccid)
        .bind(as_of)
        .fetch_all(self.pool())
        .await?;
        Ok(rows.into_iter().map(StoredEvent::from).collect())
    }

    /// One aggregate's events with a sequence strictly between `after` and `before`, in
    /// sequence order, on the caller's connection (a projector filling a gap in its
    /// transaction).
    pub async fn aggregate_events_between_on(
        conn: &mut PgConnection,
        aggregate_type: &str,
        aggregate_id: &str,
        after: i64,
        before: i64,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        let rows: Vec<EventRow> = sqlx::query_as(&format!(
            "{SELECT_EVENT} WHERE aggregate_type = $1 AND aggregate_id = $2 AND sequence > $3 AND sequence < $4 \
             ORDER BY sequence"
        ))
        .bind(aggregate_type)
        .bind(aggregate_id)
        .bind(after)
        .bind(before)
        .fetch_all(conn)
        .await?;
        Ok(rows.into_iter().map(StoredEvent::from).collect())
    }
}
