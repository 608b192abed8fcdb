//! Poison events, parked (`parked_events`): an event a projector cannot decode or apply is
//! kept aside with its position, error and time, so that every other aggregate keeps
//! projecting. Later events of the same aggregate are parked behind it (applying them without
//! it would be wrong); the SIM's row says `"projection": "parked"` meanwhile.
//!
//! `projectors replay-parked` ([`replay_parked`]) applies them again, an aggregate at a time
//! and in sequence order, once the code understands them.

use eventstore::{GlobalLog, StoredEvent};
use serde::Serialize;
use sqlx::{Connection, PgConnection, PgPool};

use crate::apply::{Applier, ApplyError, Guard, Outcome, UsageRollups, PROJECTION_LOCK_KEY};

/// Errors kept per parked event (the log has the whole message).
const MAX_ERROR_CHARS: usize = 2_000;

impl Applier {
    /// Parks `event` on the caller's transaction: its row in `parked_events` (a repeat only
    /// counts another attempt), its aggregate marked parked, its SIM's row marked incomplete.
    pub(crate) async fn park(
        &self,
        conn: &mut PgConnection,
        event: &StoredEvent,
        reason: &str,
    ) -> Result<(), sqlx::Error> {
        let reason: String = reason.chars().take(MAX_ERROR_CHARS).collect();
        tracing::error!(
            projector = %self.projector,
            position = event.position,
            aggregate_type = %event.aggregate_type,
            aggregate_id = %event.aggregate_id,
            sequence = event.sequence,
            event_type = %event.event_type,
            error = %reason,
            "event parked: it cannot be applied; other aggregates keep projecting (see `projectors replay-parked`)"
        );
        sqlx::query(
            "INSERT INTO parked_events (projector, position, transaction_id, aggregate_type, aggregate_id, \
               sequence, event_type, iccid, error) \
             VALUES ($1, $2, $3::text::xid8, $4, $5, $6, $7, $8, $9) \
             ON CONFLICT (projector, position) DO UPDATE SET error = EXCLUDED.error, \
               attempts = parked_events.attempts + 1, last_attempt_at = now()",
        )
        .bind(&self.projector)
        .bind(event.position)
        .bind(event.transaction_id.unwrap_or_default().to_string())
        .bind(&event.aggregate_type)
        .bind(&event.aggregate_id)
        .bind(event.sequence)
        .bind(&event.event_type)
        .bind(&event.iccid)
        .bind(&reason)
        .execute(&mut *conn)
        .await?;
        sqlx::query(
            "INSERT INTO projection_versions (projector, aggregate_type, aggregate_id, version, parked) \
             VALUES ($1, $2, $3, 0, true) \
             ON CONFLICT (projector, aggregate_type, aggregate_id) DO UPDATE SET parked = true",
        )
        .bind(&self.projector)
        .bind(&event.aggregate_type)
        .bind(&event.aggregate_id)
        .execute(&mut *conn)
        .await?;
        readmodel::sims::set_projection(conn, &event.iccid, true).await?;
        Ok(())
    }
}

/// `projector_parked_events`: how many events wait in `parked_events`.
pub async fn parked_count(pool: &PgPool, projector: &str) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar("SELECT count(*) FROM parked_events WHERE projector = $1")
        .bind(projector)
        .fetch_one(pool)
        .await
}

/// What `projectors replay-parked` did.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct ReplayReport {
    /// Parked events applied now (or found already applied).
    pub replayed: u64,
    /// Aggregates whose every parked event is applied now.
    pub aggregates_cleared: u64,
    /// Events still parked (their aggregate's first parked event failed again).
    pub still_parked: u64,
    /// The first error of each aggregate that stays parked: (position, error).
    pub errors: Vec<(i64, String)>,
    /// The SIMs whose rows the replay touched (their cache entries are refreshed).
    pub iccids: Vec<String>,
}

/// Why a replay stopped: what stops applying (a database error, a failed read of the log;
/// an event that fails again only stays parked).
pub type ReplayError = ApplyError;

/// Applies the parked events of `projector` again: per aggregate, in sequence order, under
/// the aggregate's row lock (so the live projector waits and then continues normally) and the
/// shared projection lock (so a rebuild's swap cannot interleave). An aggregate whose parked
/// events all apply is un-parked, and its SIM's row shows complete again once none of its
/// aggregates is parked; one whose first parked event fails again stays as it was, with the
/// attempt counted.
pub async fn replay_parked(pool: &PgPool, projector: &str) -> Result<ReplayReport, ReplayError> {
    let applier = Applier::new(projector, UsageRollups::detect(pool).await?);
    let aggregates: Vec<(String, String)> = sqlx::query_as(
        "SELECT aggregate_type, aggregate_id FROM parked_events WHERE projector = $1 \
         GROUP BY aggregate_type, aggregate_id ORDER BY min(position)",
    )
    .bind(projector)
    .fetch_all(pool)
    .await?;
    let mut report = ReplayReport::default();
    for (aggregate_type, aggregate_id) in aggregates {
        let mut conn = pool.acquire().await?;
        replay_aggregate(&mut conn, &applier, &aggregate_type, &aggregate_id, &mut report).await?;
    }
    tracing::info!(?report, projector, "parked events replayed");
    Ok(report)
}

async fn replay_aggregate(
    conn: &mut PgConnection,
    applier: &Applier,
    aggregate_type: &str,
    aggregate_id: &str,
    report: &mut ReplayReport,
) -> Result<(), ReplayError> {
    let projector = applier.projector.as_str();
    let mut tx = conn.begin().await?;
    sqlx::query("SELECT pg_advisory_xact_lock_shared($1)")
        .bind(PROJECTION_LOCK_KEY)
        .execute(&mut *tx)
        .await?;
    // The live projector writes rows under this lock too (it folds rows in memory and writes
    // them whole): taking it keeps the two from overwriting each other's changes. With
    // partitions, the lock is the checkpoint of the partition the aggregate's SIM is in.
    let partitions = crate::checkpoint::layout_locked(&mut tx, projector).await?;
    let iccid: Option<String> = sqlx::query_scalar(
        "SELECT iccid FROM parked_events WHERE projector = $1 AND aggregate_type = $2 AND aggregate_id = $3 LIMIT 1",
    )
    .bind(projector)
    .bind(aggregate_type)
    .bind(aggregate_id)
    .fetch_optional(&mut *tx)
    .await?;
    let share = eventstore::Share {
        index: eventstore::partition_of(iccid.as_deref().unwrap_or(""), partitions),
        of: partitions,
    };
    crate::checkpoint::lock(&mut tx, &crate::checkpoint::partition_name(projector, share)).await?;
    sqlx::query(
        "SELECT version FROM projection_versions \
         WHERE projector = $1 AND aggregate_type = $2 AND aggregate_id = $3 FOR UPDATE",
    )
    .bind(projector)
    .bind(aggregate_type)
    .bind(aggregate_id)
    .fetch_optional(&mut *tx)
    .await?;
    // Read after the lock: the live projector may have parked more behind these meanwhile.
    let parked: Vec<(i64, String)> = sqlx::query_as(
        "SELECT position, iccid FROM parked_events \
         WHERE projector = $1 AND aggregate_type = $2 AND aggregate_id = $3 ORDER BY sequence",
    )
    .bind(projector)
    .bind(aggregate_type)
    .bind(aggregate_id)
    .fetch_all(&mut *tx)
    .await?;
    let mut iccids: Vec<String> = Vec::new();
    let mut failed = None;
    for (index, (position, iccid)) in parked.iter().enumerate() {
        if !iccids.contains(iccid) {
            iccids.push(iccid.clone());
        }
        let Some(event) = GlobalLog::event_at_on(&mut tx, *position).await? else {
            continue; // cannot happen: the log is append-only
        };
        sqlx::query("SAVEPOINT replay_event").execute(&mut *tx).await?;
        let replayed = applier
            .apply_batch(&mut tx, std::slice::from_ref(&event), Guard::Replay)
            .await
            .map(|applied| applied.outcome());
        match replayed {
            Ok(Outcome::Applied { .. } | Outcome::Duplicate) => {
                sqlx::query("RELEASE SAVEPOINT replay_event")
                    .execute(&mut *tx)
                    .await?;
                sqlx::query("DELETE FROM parked_events WHERE projector = $1 AND position = $2")
                    .bind(projector)
                    .bind(position)
                    .execute(&mut *tx)
                    .await?;
                report.replayed += 1;
            }
            Ok(Outcome::Parked) => unreachable!("the replay guard never parks"),
            Err(error) if error.is_poison() || matches!(error, ApplyError::MissingEvents { .. }) => {
                sqlx::query("ROLLBACK TO SAVEPOINT replay_event")
                    .execute(&mut *tx)
                    .await?;
                failed = Some((index, *position, error.to_string()));
                break;
            }
            Err(error) => return Err(error),
        }
    }
    match failed {
        None => {
            sqlx::query(
                "UPDATE projection_versions SET parked = false \
                 WHERE projector = $1 AND aggregate_type = $2 AND aggregate_id = $3",
            )
            .bind(projector)
            .bind(aggregate_type)
            .bind(aggregate_id)
            .execute(&mut *tx)
            .await?;
            report.aggregates_cleared += 1;
        }
        Some((index, position, error)) => {
            sqlx::query(
                "UPDATE parked_events SET attempts = attempts + 1, last_attempt_at = now(), error = $3 \
                 WHERE projector = $1 AND position = $2",
            )
            .bind(projector)
            .bind(position)
            .bind(error.chars().take(MAX_ERROR_CHARS).collect::<String>())
            .execute(&mut *tx)
            .await?;
            report.still_parked += (parked.len() - index) as u64;
            report.errors.push((position, error));
        }
    }
    for iccid in &iccids {
        if !report.iccids.contains(iccid) {
            report.iccids.push(iccid.clone());
        }
        let still_parked: bool = sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM parked_events WHERE projector = $1 AND iccid = $2)",
        )
        .bind(projector)
        .bind(iccid)
        .fetch_one(&mut *tx)
        .await?;
        readmodel::sims::set_projection(&mut tx, iccid, still_parked).await?;
    }
    tx.commit().await?;
    Ok(())
}
