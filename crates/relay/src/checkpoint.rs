//! The relay's checkpoint: the last event JetStream acknowledged, in `relay_checkpoints`.

use eventstore::LogCursor;
use sqlx::PgConnection;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Checkpoint {
    pub cursor: LogCursor,
    pub stream_sequence: u64,
}

pub async fn read(conn: &mut PgConnection, stream: &str) -> Result<Option<Checkpoint>, sqlx::Error> {
    let row: Option<(String, i64, i64)> = sqlx::query_as(
        "SELECT transaction_id::text, position, stream_sequence FROM relay_checkpoints WHERE stream = $1",
    )
    .bind(stream)
    .fetch_optional(conn)
    .await?;
    Ok(row.map(|(transaction_id, position, stream_sequence)| Checkpoint {
        cursor: LogCursor::from_row(&transaction_id, position),
        stream_sequence: u64::try_from(stream_sequence).unwrap_or_default(),
    }))
}

/// Written on the lock's own connection: if that connection is gone, so is the lock, and a
/// relay that may no longer lead cannot move the checkpoint.
pub async fn write(conn: &mut PgConnection, stream: &str, checkpoint: Checkpoint) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO relay_checkpoints (stream, transaction_id, position, stream_sequence, updated_at) \
         VALUES ($1, $2::text::xid8, $3, $4, now()) \
         ON CONFLICT (stream) DO UPDATE SET transaction_id = EXCLUDED.transaction_id, \
             position = EXCLUDED.position, stream_sequence = EXCLUDED.stream_sequence, \
             updated_at = EXCLUDED.updated_at",
    )
    .bind(stream)
    .bind(checkpoint.cursor.transaction_id.to_string())
    .bind(checkpoint.cursor.position)
    .bind(i64::try_from(checkpoint.stream_sequence).unwrap_or(i64::MAX))
    .execute(conn)
    .await?;
    Ok(())
}
