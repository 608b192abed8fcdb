//! The `sim_quotas` read model: a row per SIM and quota kind. Written by the projectors
//! ([`upsert_quotas`]), read by the query API ([`quotas_of`]); the SIM's own row carries the
//! totals too (`sims.data_*`, `sms_*`).

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use crate::bulk::{bind_columns, json_array, load_keyed, replace_on_conflict};

/// The `sim_quotas` columns in [`QuotaRow`]'s order.
pub const QUOTA_COLUMNS: &str =
    "iccid, kind, total, remaining, expiry_date, period, thresholds_crossed, exhausted, expired, \
     pending_topup_id, pending_topup_volume, last_topup_at, last_topup_status, version, last_position, \
     updated_at";

/// A `sim_quotas` row: one per SIM and kind, what `GET /sims/{iccid}/quotas` answers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, sqlx::FromRow)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct QuotaRow {
    pub iccid: String,
    /// `data` (bytes) or `sms` (messages).
    pub kind: String,
    pub total: i64,
    pub remaining: i64,
    pub expiry_date: Option<DateTime<Utc>>,
    /// The quota period (a new assignment or top-up starts one); alerts are once per period.
    pub period: i32,
    /// Used-percentages alerted in this period (80, 100).
    pub thresholds_crossed: Vec<i32>,
    pub exhausted: bool,
    pub expired: bool,
    pub pending_topup_id: Option<Uuid>,
    pub pending_topup_volume: Option<i64>,
    pub last_topup_at: Option<DateTime<Utc>>,
    pub last_topup_status: Option<String>,
    pub version: i64,
    pub last_position: i64,
    pub updated_at: DateTime<Utc>,
}

impl QuotaRow {
    /// A quota's row before its first event (the table's defaults).
    pub fn new(iccid: &str, kind: &str, position: i64, at: DateTime<Utc>) -> Self {
        Self {
            iccid: iccid.to_owned(),
            kind: kind.to_owned(),
            total: 0,
            remaining: 0,
            expiry_date: None,
            period: 0,
            thresholds_crossed: Vec::new(),
            exhausted: false,
            expired: false,
            pending_topup_id: None,
            pending_topup_volume: None,
            last_topup_at: None,
            last_topup_status: None,
            version: 0,
            last_position: position,
            updated_at: at,
        }
    }
}

/// A SIM's quotas, `data` first.
pub async fn quotas_of(pool: &PgPool, iccid: &str) -> Result<Vec<QuotaRow>, sqlx::Error> {
    sqlx::query_as(&format!(
        "SELECT {QUOTA_COLUMNS} FROM sim_quotas WHERE iccid = $1 ORDER BY kind"
    ))
    .bind(iccid)
    .fetch_all(pool)
    .await
}

/// Every quota of these SIMs, by (iccid, kind).
pub async fn load_quotas(
    conn: &mut PgConnection,
    iccids: &[String],
) -> Result<HashMap<(String, String), QuotaRow>, sqlx::Error> {
    load_keyed(
        conn,
        QUOTA_COLUMNS,
        "sim_quotas",
        "iccid",
        iccids,
        |row: &QuotaRow| (row.iccid.clone(), row.kind.clone()),
    )
    .await
}

/// Writes these rows as they are (inserted or replaced whole).
pub async fn upsert_quotas(conn: &mut PgConnection, rows: &[&QuotaRow]) -> Result<(), sqlx::Error> {
    if rows.is_empty() {
        return Ok(());
    }
    let thresholds: Vec<Value> = rows.iter().map(|r| json_array(&r.thresholds_crossed)).collect();
    let sql = format!(
        "INSERT INTO sim_quotas ({QUOTA_COLUMNS}) \
         SELECT u.iccid, u.kind, u.total, u.remaining, u.expiry_date, u.period, \
           ARRAY(SELECT jsonb_array_elements_text(u.thresholds_crossed)::integer), u.exhausted, u.expired, \
           u.pending_topup_id, u.pending_topup_volume, u.last_topup_at, u.last_topup_status, u.version, \
           u.last_position, u.updated_at \
         FROM UNNEST($1::text[], $2::text[], $3::int8[], $4::int8[], $5::timestamptz[], $6::int4[], $7::jsonb[], \
           $8::bool[], $9::bool[], $10::uuid[], $11::int8[], $12::timestamptz[], $13::text[], $14::int8[], \
           $15::int8[], $16::timestamptz[]) AS u({QUOTA_COLUMNS}) {}",
        replace_on_conflict("iccid, kind", QUOTA_COLUMNS, &[])
    );
    let query = bind_columns!(sqlx::query(&sql), rows; iccid, kind, total, remaining, expiry_date, period)
        .bind(thresholds);
    bind_columns!(query, rows;
        exhausted, expired, pending_topup_id, pending_topup_volume, last_topup_at, last_topup_status,
        version, last_position, updated_at)
    .execute(conn)
    .await?;
    Ok(())
}
