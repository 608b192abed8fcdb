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
/// transactions older than every event-writing transaction still in flight, in (transaction,
/// position) order, makes the set below the horizon final: nothing can ever be committed
/// behind the cursor. The horizon is `event_log_horizon()` (migration
/// 20261202000007): `pg_snapshot_xmin` without the transactions known to write no events
/// (writers are marked before they get a transaction id), so a projector's apply, a
/// TimescaleDB job or a report in another database no longer holds events back.
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

    /// A cursor as a row stores it: the transaction id read as text (`xid8::text`; sqlx has no
    /// `xid8`), always an unsigned 64-bit number in digits.
    pub fn from_row(transaction_id: &str, position: i64) -> Self {
        Self {
            transaction_id: transaction_id.parse().unwrap_or_default(),
            position,
        }
    }
}

/// Committed events after a cursor; see [`GlobalLog::backlog`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Backlog {
    /// Counted up to the bound given.
    pub events: i64,
    /// Age of the oldest of them (0 when none).
    pub oldest_age_seconds: f64,
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

    pub(crate) fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Up to `limit` events after `cursor`, oldest first. Events of transactions still in
    /// flight, and of any transaction younger than the oldest one in flight, wait for a later
    /// call.
    pub async fn read_after(&self, cursor: LogCursor, limit: i64) -> Result<Vec<StoredEvent>, StoreError> {
        let rows = sqlx::query_as::<_, EventRow>(&format!(
            "{SELECT_EVENT} \
             WHERE (transaction_id, position) > ($1::text::xid8, $2) \
               AND transaction_id < (SELECT event_log_horizon()) \
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

    /// Up to `limit` events after `after` and up to `up_to` (inclusive), oldest first, below
    /// the horizon like [`GlobalLog::read_after`]: the bounded steps in which a projector
    /// catches up to the event a message names.
    pub async fn read_range(
        &self,
        after: LogCursor,
        up_to: LogCursor,
        limit: i64,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        Self::read_range_on(&mut *self.pool.acquire().await?, after, up_to, limit).await
    }

    /// [`GlobalLog::read_range`] on the caller's connection (inside its transaction).
    pub async fn read_range_on(
        conn: &mut sqlx::PgConnection,
        after: LogCursor,
        up_to: LogCursor,
        limit: i64,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        let rows = sqlx::query_as::<_, EventRow>(&format!(
            "{SELECT_EVENT} \
             WHERE (transaction_id, position) > ($1::text::xid8, $2) \
               AND (transaction_id, position) <= ($3::text::xid8, $4) \
               AND transaction_id < (SELECT event_log_horizon()) \
             ORDER BY transaction_id, position \
             LIMIT $5"
        ))
        .bind(after.transaction_id.to_string())
        .bind(after.position)
        .bind(up_to.transaction_id.to_string())
        .bind(up_to.position)
        .bind(limit)
        .fetch_all(conn)
        .await?;
        Ok(rows.into_iter().map(StoredEvent::from).collect())
    }

    /// Up to `limit` committed events of `event_type` recorded at or after `since`, with a
    /// position above `after_position`, in position order: a rule's dry run over the past
    /// (index `events_by_type_time`, migration 20261207200002).
    pub async fn of_type_since(
        &self,
        event_type: &str,
        since: chrono::DateTime<chrono::Utc>,
        after_position: i64,
        limit: i64,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        let rows = sqlx::query_as::<_, EventRow>(&format!(
            "{SELECT_EVENT} WHERE event_type = $1 AND recorded_at >= $2 AND position > $3 \
             AND transaction_id < (SELECT event_log_horizon()) ORDER BY position LIMIT $4"
        ))
        .bind(event_type)
        .bind(since)
        .bind(after_position)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().map(StoredEvent::from).collect())
    }

    /// The ids of every aggregate of `aggregate_type` (the rules: a handful, read by the
    /// command API's rule routes and engine), oldest first.
    pub async fn aggregate_ids(&self, aggregate_type: &str) -> Result<Vec<String>, StoreError> {
        Ok(sqlx::query_scalar(
            "SELECT aggregate_id FROM events WHERE aggregate_type = $1 AND sequence = 1 ORDER BY position",
        )
        .bind(aggregate_type)
        .fetch_all(&self.pool)
        .await?)
    }

    /// The event stored at `position`, if any (committed; the horizon does not matter here).
    pub async fn event_at(&self, position: i64) -> Result<Option<StoredEvent>, StoreError> {
        Self::event_at_on(&mut *self.pool.acquire().await?, position).await
    }

    /// [`GlobalLog::event_at`] on the caller's connection.
    pub async fn event_at_on(
        conn: &mut sqlx::PgConnection,
        position: i64,
    ) -> Result<Option<StoredEvent>, StoreError> {
        let row = sqlx::query_as::<_, EventRow>(&format!("{SELECT_EVENT} WHERE position = $1"))
            .bind(position)
            .fetch_optional(conn)
            .await?;
        Ok(row.map(StoredEvent::from))
    }

    /// The events stored at `positions` (those that exist), in position order.
    pub async fn events_at(&self, positions: &[i64]) -> Result<Vec<StoredEvent>, StoreError> {
        let rows = sqlx::query_as::<_, EventRow>(&format!(
            "{SELECT_EVENT} WHERE position = ANY($1) ORDER BY position"
        ))
        .bind(positions)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().map(StoredEvent::from).collect())
    }

    /// What waits after `cursor`: committed events (counted up to `bound`, so the query stays
    /// cheap however far behind a reader is), including those above the horizon, which a
    /// reader cannot take yet because an older transaction is still open; and the age of the
    /// oldest of them. This is what lag metrics must show: a stall behind an open transaction
    /// is a growing age, not a zero.
    pub async fn backlog(&self, cursor: LogCursor, bound: i64) -> Result<Backlog, StoreError> {
        let (events, oldest_age_seconds): (i64, f64) = sqlx::query_as(
            "SELECT count(*), COALESCE(EXTRACT(EPOCH FROM clock_timestamp() - min(recorded_at)), 0)::float8 \
             FROM (SELECT recorded_at FROM events \
                   WHERE (transaction_id, position) > ($1::text::xid8, $2) \
                   ORDER BY transaction_id, position LIMIT $3) pending",
        )
        .bind(cursor.transaction_id.to_string())
        .bind(cursor.position)
        .bind(bound)
        .fetch_one(&self.pool)
        .await?;
        Ok(Backlog {
            events,
            oldest_age_seconds: oldest_age_seconds.max(0.0),
        })
    }

    /// How long the oldest transaction that holds the log's horizon back has been open: the
    /// oldest event-writing transaction with a transaction id anywhere on the server (and any
    /// whose name cannot be seen: it may be one), 0 when none. Needs `pg_read_all_stats` (or
    /// superuser) to see other roles' sessions; without it only this role's transactions count.
    pub async fn horizon_holder_age(&self) -> Result<f64, StoreError> {
        let age: f64 = sqlx::query_scalar(
            "SELECT COALESCE(max(EXTRACT(EPOCH FROM clock_timestamp() - xact_start)), 0)::float8 \
             FROM pg_stat_activity WHERE backend_xid IS NOT NULL AND xact_start IS NOT NULL \
             AND (application_name IS NULL OR application_name LIKE 'event-writer%')",
        )
        .fetch_one(&self.pool)
        .await?;
        Ok(age.max(0.0))
    }

    /// This store's identity (`event_store_identity`), carried by every published message so
    /// that a stream filled from another database is recognised as such.
    pub async fn store_id(&self) -> Result<uuid::Uuid, StoreError> {
        Ok(sqlx::query_scalar("SELECT store_id FROM event_store_identity")
            .fetch_one(&self.pool)
            .await?)
    }

    /// The highest position whose event, and every event before it in the global order, can
    /// be read now (0 when none).
    pub async fn head(&self) -> Result<i64, StoreError> {
        let head: Option<i64> = sqlx::query_scalar(
            "SELECT position FROM events \
             WHERE transaction_id < (SELECT event_log_horizon()) \
             ORDER BY transaction_id DESC, position DESC LIMIT 1",
        )
        .fetch_optional(&self.pool)
        .await?;
        Ok(head.unwrap_or(0))
    }

    /// How many events are stored (committed).
    pub async fn count(&self) -> Result<i64, StoreError> {
        Ok(sqlx::query_scalar("SELECT count(*) FROM events")
            .fetch_one(&self.pool)
            .await?)
    }
}
