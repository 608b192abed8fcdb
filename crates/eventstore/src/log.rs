use serde::{Deserialize, Serialize};
use sqlx::PgPool;

use crate::error::StoreError;
use crate::store::{EventRow, SELECT_EVENT};
use crate::stored::StoredEvent;

/// A place in the global log: the last event read, as (writing transaction, position).
///
/// A position alone cannot be a cursor. Positions are handed out at insert, not at commit:
/// T1 writes position 1, T2 position 2, T1 position 3, T1 commits; a reader that saw 1 and 3
/// and kept 3 as its cursor would never read 2 once T2 commits. Reading only the rows of
/// transactions older than every transaction still in flight (`pg_snapshot_xmin`), in
/// (transaction, position) order, makes the set below the horizon final: nothing can ever be
/// committed behind the cursor.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct LogCursor {
    pub transaction_id: u64,
    pub position: i64,
}

impl LogCursor {
    /// Before the first event.
    pub const START: Self = Self {
        transaction_id: 0,
        position: 0,
    };

    /// The cursor just after `event`.
    pub fn after(event: &StoredEvent) -> Self {
        Self {
            transaction_id: event.transaction_id.unwrap_or_default(),
            position: event.position,
        }
    }
}

/// Reads every committed event in the global order, never skipping one that a slower
/// transaction commits later.
#[derive(Clone, Debug)]
pub struct GlobalLog {
    pool: PgPool,
}

impl GlobalLog {
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }

    /// Up to `limit` events after `cursor`, oldest first. Events of transactions still in
    /// flight, and of any transaction younger than the oldest one in flight, wait for a later
    /// call.
    pub async fn read_after(&self, cursor: LogCursor, limit: i64) -> Result<Vec<StoredEvent>, StoreError> {
        let rows = sqlx::query_as::<_, EventRow>(&format!(
            "{SELECT_EVENT} \
             WHERE (transaction_id, position) > ($1::text::xid8, $2) \
               AND transaction_id < pg_snapshot_xmin(pg_current_snapshot()) \
             ORDER BY transaction_id, position \
             LIMIT $3"
        ))
        .bind(cursor.transaction_id.to_string())
        .bind(cursor.position)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().map(StoredEvent::from).collect())
    }

    /// The cursor of the event stored at `position`, for APIs whose public cursor is a
    /// position (the feed, consistency tokens). Position 0 means the start of the log.
    pub async fn cursor_at(&self, position: i64) -> Result<LogCursor, StoreError> {
        if position <= 0 {
            return Ok(LogCursor::START);
        }
        let transaction_id: Option<String> =
            sqlx::query_scalar("SELECT transaction_id::text FROM events WHERE position = $1")
                .bind(position)
                .fetch_optional(&self.pool)
                .await?;
        let transaction_id = transaction_id.ok_or(StoreError::UnknownPosition(position))?;
        Ok(LogCursor {
            transaction_id: transaction_id
                .parse()
                .map_err(|_| StoreError::UnknownPosition(position))?,
            position,
        })
    }

    /// The highest position whose event, and every event before it in the global order, can
    /// be read now (0 when none).
    pub async fn head(&self) -> Result<i64, StoreError> {
        let head: Option<i64> = sqlx::query_scalar(
            "SELECT position FROM events \
             WHERE transaction_id < pg_snapshot_xmin(pg_current_snapshot()) \
             ORDER BY transaction_id DESC, position DESC LIMIT 1",
        )
        .fetch_optional(&self.pool)
        .await?;
        Ok(head.unwrap_or(0))
    }
}
