//! The `sim_status_history` read model: a row per change of a SIM's status (registration
//! included), with who and when. Written by the projectors.

use chrono::{DateTime, Utc};
use domain::SimStatus;
use sqlx::PgConnection;

use crate::bulk::column;

/// A `sim_status_history` row.
#[derive(Debug, Clone, PartialEq)]
pub struct StatusChange {
    pub iccid: String,
    pub position: i64,
    pub changed_at: DateTime<Utc>,
    pub from_status: Option<SimStatus>,
    pub to_status: SimStatus,
    pub event_type: String,
    pub actor: Option<String>,
}

/// Inserts the changes (a replayed one adds nothing: keyed by SIM and position).
pub async fn insert_status_history(
    conn: &mut PgConnection,
    rows: &[StatusChange],
) -> Result<(), sqlx::Error> {
    if rows.is_empty() {
        return Ok(());
    }
    sqlx::query(
        "INSERT INTO sim_status_history (iccid, position, changed_at, from_status, to_status, event_type, actor) \
         SELECT * FROM UNNEST($1::text[], $2::int8[], $3::timestamptz[], $4::text[], $5::text[], $6::text[], \
           $7::text[]) ON CONFLICT (iccid, position) DO NOTHING",
    )
    .bind(column!(rows, iccid))
    .bind(column!(rows, position))
    .bind(column!(rows, changed_at))
    .bind(rows.iter().map(|r| r.from_status.map(SimStatus::as_str)).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.to_status.as_str()).collect::<Vec<_>>())
    .bind(column!(rows, event_type))
    .bind(column!(rows, actor))
    .execute(conn)
    .await?;
    Ok(())
}
