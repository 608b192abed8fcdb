//! Aggregate snapshots (`aggregate_snapshots`): a cache of an aggregate's state at a version.
//!
//! [`crate::EventStore::load`] starts from the snapshot (when its `state_version` is the
//! code's and it decodes) and applies only the events after it. A snapshot is written after a
//! command's commit whenever the aggregate's version crosses a multiple of the store's
//! `snapshot_every`; it is best effort (a failure is logged, the command stands) and never
//! replaces a newer one. Deleting them all changes nothing but speed.

use domain::Aggregate;
use sqlx::PgPool;

use crate::error::StoreError;

/// A snapshot as read back.
pub(crate) struct Snapshot<A> {
    pub state: A,
    pub version: u64,
    pub last_position: i64,
}

/// The aggregate's snapshot, if there is a usable one.
pub(crate) async fn read<A: Aggregate>(
    pool: &PgPool,
    aggregate_id: &str,
) -> Result<Option<Snapshot<A>>, StoreError> {
    let row: Option<(i64, i64, serde_json::Value)> = sqlx::query_as(
        "SELECT version, last_position, state FROM aggregate_snapshots \
         WHERE aggregate_type = $1 AND aggregate_id = $2 AND state_version = $3",
    )
    .bind(A::TYPE)
    .bind(aggregate_id)
    .bind(A::STATE_VERSION)
    .fetch_optional(pool)
    .await?;
    let Some((version, last_position, state)) = row else {
        return Ok(None);
    };
    match serde_json::from_value::<A>(state) {
        Ok(state) => Ok(Some(Snapshot {
            state,
            version: version as u64,
            last_position,
        })),
        Err(error) => {
            tracing::warn!(aggregate_type = A::TYPE, aggregate_id, %error,
                "snapshot does not decode; loading from the events (bump STATE_VERSION when the state changes)");
            Ok(None)
        }
    }
}

/// Stores `state` as the aggregate's snapshot at `version`, unless a newer one is there.
pub(crate) async fn write<A: Aggregate>(
    pool: &PgPool,
    aggregate_id: &str,
    state: &A,
    version: u64,
    last_position: i64,
) -> Result<(), StoreError> {
    let state = serde_json::to_value(state).map_err(StoreError::Encode)?;
    sqlx::query(
        "INSERT INTO aggregate_snapshots (aggregate_type, aggregate_id, version, last_position, state_version, state) \
         VALUES ($1, $2, $3, $4, $5, $6) \
         ON CONFLICT (aggregate_type, aggregate_id) DO UPDATE SET version = EXCLUDED.version, \
           last_position = EXCLUDED.last_position, state_version = EXCLUDED.state_version, \
           state = EXCLUDED.state, taken_at = now() \
         WHERE aggregate_snapshots.version < EXCLUDED.version \
            OR aggregate_snapshots.state_version <> EXCLUDED.state_version",
    )
    .bind(A::TYPE)
    .bind(aggregate_id)
    .bind(version as i64)
    .bind(last_position)
    .bind(A::STATE_VERSION)
    .bind(state)
    .execute(pool)
    .await?;
    Ok(())
}
