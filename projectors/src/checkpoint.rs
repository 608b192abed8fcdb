//! A projector's checkpoint (`projection_checkpoints`): every event of the global log up to
//! this cursor is applied (or parked). Consistency tokens wait for it.
//!
//! It moves only through [`crate::follow`]'s ordered reads of the log (and the rebuild), one
//! bounded range at a time and forward only, so "up to here" stays true whatever order, or
//! how many times, messages arrive in.

use eventstore::{LogCursor, Share};
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
        cursor: LogCursor::from_row(&transaction_id, position),
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

/// The checkpoint row (and durable consumer) name of `share` of the projector `group`: the
/// group's own name when the log is not partitioned, else `<group>-p<k>`.
pub fn partition_name(group: &str, share: Share) -> String {
    if share.is_whole() {
        group.to_owned()
    } else {
        format!("{group}-p{}", share.index)
    }
}

/// How many partitions the layout of `group` has (1 when none is recorded); `FOR SHARE`, so
/// a change of layout waits for the transaction reading it.
pub async fn layout_locked(conn: &mut PgConnection, group: &str) -> Result<u32, sqlx::Error> {
    let partitions: Option<i32> =
        sqlx::query_scalar("SELECT partitions FROM projection_layouts WHERE projector = $1 FOR SHARE")
            .bind(group)
            .fetch_optional(conn)
            .await?;
    Ok(partitions.unwrap_or(1).max(1) as u32)
}

/// The checkpoint rows of the current layout of `group`.
pub async fn partition_names(conn: &mut PgConnection, group: &str) -> Result<Vec<String>, sqlx::Error> {
    sqlx::query_scalar("SELECT projection_partition_names($1)")
        .bind(group)
        .fetch_all(conn)
        .await
}

/// The least checkpoint of the layout's partitions: everything up to it is applied in every
/// partition (`START` when a partition has applied nothing yet).
pub async fn least(conn: &mut PgConnection, group: &str) -> Result<LogCursor, sqlx::Error> {
    let names = partition_names(&mut *conn, group).await?;
    let rows: Vec<(String, i64)> = sqlx::query_as(
        "SELECT transaction_id::text, position FROM projection_checkpoints WHERE projector = ANY($1)",
    )
    .bind(&names)
    .fetch_all(&mut *conn)
    .await?;
    if rows.len() < names.len() {
        return Ok(LogCursor::START);
    }
    Ok(rows
        .into_iter()
        .map(|(txid, position)| LogCursor::from_row(&txid, position))
        .min()
        .unwrap_or(LogCursor::START))
}

/// Serializes layout changes between replicas starting at once.
const LAYOUT_LOCK_KEY: i64 = 0x5349_4d4c_4159_4f55; // "SIMLAYOU"

/// Records that `group` runs in `partitions` partitions. When that changes the layout, every
/// checkpoint of the group (the old partitions', or the unpartitioned one) is replaced by one
/// per new partition at the least of them: each SIM may now belong to another partition, and
/// everything up to that least cursor is applied whatever the partition (what comes after it
/// is applied again, and the version guard skips what was applied before). Waits for
/// in-flight transactions of the old layout (their rows are locked here).
pub async fn set_layout(pool: &sqlx::PgPool, group: &str, partitions: u32) -> Result<bool, sqlx::Error> {
    let mut tx = pool.begin().await?;
    sqlx::query("SELECT pg_advisory_xact_lock($1)")
        .bind(LAYOUT_LOCK_KEY)
        .execute(&mut *tx)
        .await?;
    let recorded: Option<i32> =
        sqlx::query_scalar("SELECT partitions FROM projection_layouts WHERE projector = $1 FOR UPDATE")
            .bind(group)
            .fetch_optional(&mut *tx)
            .await?;
    let old = recorded.unwrap_or(1).max(1) as u32;
    let partitions = partitions.max(1);
    if old == partitions {
        if recorded.is_none() {
            record_layout(&mut tx, group, partitions).await?;
        }
        tx.commit().await?;
        return Ok(false);
    }
    let old_names: Vec<String> = (0..old)
        .map(|index| partition_name(group, Share { index, of: old }))
        .collect();
    let rows: Vec<(String, i64)> = sqlx::query_as(
        "SELECT transaction_id::text, position FROM projection_checkpoints WHERE projector = ANY($1) FOR UPDATE",
    )
    .bind(&old_names)
    .fetch_all(&mut *tx)
    .await?;
    let least = (rows.len() == old_names.len()).then(|| {
        rows.iter()
            .map(|(txid, position)| LogCursor::from_row(txid, *position))
            .min()
            .unwrap_or(LogCursor::START)
    });
    let all_names: Vec<String> = old_names
        .iter()
        .cloned()
        .chain((0..partitions).map(|index| {
            partition_name(
                group,
                Share {
                    index,
                    of: partitions,
                },
            )
        }))
        .collect();
    sqlx::query("DELETE FROM projection_checkpoints WHERE projector = ANY($1)")
        .bind(&all_names)
        .execute(&mut *tx)
        .await?;
    if let Some(least) = least.filter(|c| *c != LogCursor::START) {
        for index in 0..partitions {
            let name = partition_name(
                group,
                Share {
                    index,
                    of: partitions,
                },
            );
            advance(&mut tx, &name, least, 0).await?;
        }
    }
    record_layout(&mut tx, group, partitions).await?;
    tx.commit().await?;
    tracing::warn!(projector = group, from = old, to = partitions, at = ?least,
        "partition layout changed: every partition starts again from the least checkpoint");
    Ok(true)
}

async fn record_layout(conn: &mut PgConnection, group: &str, partitions: u32) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO projection_layouts (projector, partitions, updated_at) VALUES ($1, $2, now()) \
         ON CONFLICT (projector) DO UPDATE SET partitions = EXCLUDED.partitions, updated_at = now()",
    )
    .bind(group)
    .bind(partitions as i32)
    .execute(conn)
    .await?;
    Ok(())
}
