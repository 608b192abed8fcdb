//! A projector's checkpoint (`projection_checkpoints`): every event of the global log up to
//! this cursor is applied (or parked). Consistency tokens wait for it.
//!
//! It moves only through [`crate::follow`]'s ordered reads of the log (and the rebuild), one
//! bounded range at a time and forward only, so "up to here" stays true whatever order, or
//! how many times, messages arrive in.

use eventstore::LogCursor;
use sqlx::PgConnection;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Checkpoint {
    pub cursor: LogCursor,
    /// The stream sequence of the last message that named the checkpoint's event (informational).
    pub stream_sequence: i64,
}

/// The checkpoint, its row locked until the transaction ends: replicas of a projector apply in
/// turn. `None` before the first event.
pub async fn lock(conn: &mut PgConnection, projector: &str) -> Result<Option<Checkpoint>, sqlx::Error> {
    read_with(conn, projector, " FOR UPDATE").await
}

pub async fn read(conn: &mut PgConnection, projector: &str) -> Result<Option<Checkpoint>, sqlx::Error> {
    read_with(conn, projector, "").await
}

async fn read_with(
    conn: &mut PgConnection,
    projector: &str,
    suffix: &str,
) -> Result<Option<Checkpoint>, sqlx::Error> {
    let row: Option<(String, i64, i64)> = sqlx::query_as(&format!(
        "SELECT transaction_id::text, position, stream_sequence FROM projection_checkpoints \
         WHERE projector = $1{suffix}"
    ))
    .bind(projector)
    .fetch_optional(conn)
    .await?;
    Ok(row.map(|(transaction_id, position, stream_sequence)| Checkpoint {
        cursor: LogCursor {
            // xid8 is an unsigned 64-bit number, always printed as digits.
            transaction_id: transaction_id.parse().unwrap_or_default(),
            position,
        },
        stream_sequence,
    }))
}

/// Moves the checkpoint to `cursor`, never back (a late writer cannot undo a later one).
pub async fn advance(
    conn: &mut PgConnection,
    projector: &str,
    cursor: LogCursor,
    stream_sequence: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO projection_checkpoints (projector, transaction_id, position, stream_sequence, updated_at) \
         VALUES ($1, $2::text::xid8, $3, $4, now()) \
         ON CONFLICT (projector) DO UPDATE SET \
           stream_sequence = GREATEST(projection_checkpoints.stream_sequence, EXCLUDED.stream_sequence), \
           transaction_id = CASE WHEN (projection_checkpoints.transaction_id, projection_checkpoints.position) \
             < (EXCLUDED.transaction_id, EXCLUDED.position) THEN EXCLUDED.transaction_id \
             ELSE projection_checkpoints.transaction_id END, \
           position = CASE WHEN (projection_checkpoints.transaction_id, projection_checkpoints.position) \
             < (EXCLUDED.transaction_id, EXCLUDED.position) THEN EXCLUDED.position \
             ELSE projection_checkpoints.position END, \
           updated_at = now()",
    )
    .bind(projector)
    .bind(cursor.transaction_id.to_string())
    .bind(cursor.position)
    .bind(stream_sequence)
    .execute(conn)
    .await?;
    Ok(())
}
