//! The `sim_connectivity_history` read model: a row per connectivity change of a SIM (network,
//! country, radio access type, IP), whether polling, the Data Streamer or the provider's event
//! log saw it, with when it was observed and recorded. Written by the projectors; read by the
//! query API's `GET /sims/{iccid}/connectivity`.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::{PgConnection, PgPool};

use crate::bulk::column;

/// A `sim_connectivity_history` row.
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ConnectivityChange {
    pub iccid: String,
    /// The `ConnectivityChanged` event's position in the global log (the paging key).
    pub position: i64,
    /// When the provider showed it (`observed_at` of the event).
    pub observed_at: DateTime<Utc>,
    /// When the platform recorded it.
    pub recorded_at: DateTime<Utc>,
    pub network: Option<String>,
    pub country: Option<String>,
    pub rat: Option<String>,
    pub ip_address: Option<String>,
    /// Who recorded it (`sync-connector` for what the provider showed).
    pub actor: Option<String>,
}

/// Inserts the changes (a replayed one adds nothing: keyed by SIM and position).
pub async fn insert_connectivity_history(
    conn: &mut PgConnection,
    rows: &[ConnectivityChange],
) -> Result<(), sqlx::Error> {
    if rows.is_empty() {
        return Ok(());
    }
    sqlx::query(
        "INSERT INTO sim_connectivity_history (iccid, position, observed_at, recorded_at, network, country, \
           rat, ip_address, actor) \
         SELECT * FROM UNNEST($1::text[], $2::int8[], $3::timestamptz[], $4::timestamptz[], $5::text[], \
           $6::text[], $7::text[], $8::text[], $9::text[]) ON CONFLICT (iccid, position) DO NOTHING",
    )
    .bind(column!(rows, iccid))
    .bind(column!(rows, position))
    .bind(column!(rows, observed_at))
    .bind(column!(rows, recorded_at))
    .bind(column!(rows, network))
    .bind(column!(rows, country))
    .bind(column!(rows, rat))
    .bind(column!(rows, ip_address))
    .bind(column!(rows, actor))
    .execute(conn)
    .await?;
    Ok(())
}

/// Up to `limit` changes of the SIM after position `after`, oldest first.
pub async fn load_connectivity_history(
    pool: &PgPool,
    iccid: &str,
    after: i64,
    limit: i64,
) -> Result<Vec<ConnectivityChange>, sqlx::Error> {
    sqlx::query_as(
        "SELECT iccid, position, observed_at, recorded_at, network, country, rat, ip_address, actor \
         FROM sim_connectivity_history WHERE iccid = $1 AND position > $2 ORDER BY position LIMIT $3",
    )
    .bind(iccid)
    .bind(after)
    .bind(limit)
    .fetch_all(pool)
    .await
}
