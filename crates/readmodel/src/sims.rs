//! The `sims` read model: one row per SIM, what `GET /sims/{iccid}` answers. Written by the
//! projectors ([`upsert_sims`]), read by the query API and the projectors' cache refresh.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use domain::{SimControls, SimStatus};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sqlx::{PgConnection, PgPool};

use crate::bulk::{bind_columns, json_array, load_keyed, replace_on_conflict};

/// One SIM as `GET /sims/{iccid}` answers it: a row of the `sims` read model.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, sqlx::FromRow)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SimView {
    /// 19 digits.
    pub iccid: String,
    pub imsi: String,
    pub msisdn: Option<String>,
    pub label: Option<String>,
    pub tags: Vec<String>,
    /// `inactive`, `active`, `suspended` or `terminated`.
    #[sqlx(try_from = "String")]
    #[cfg_attr(feature = "openapi", schema(value_type = String, example = "active"))]
    pub status: SimStatus,
    /// `activation` or `suspension` while the provider has not confirmed it.
    pub pending_change: Option<String>,
    /// `Enabled` or `Disabled`, as 1NCE last reported it.
    pub provider_status: Option<String>,
    pub imei: Option<String>,
    pub imei_lock: bool,
    pub ip_address: Option<String>,
    pub network: Option<String>,
    pub country: Option<String>,
    pub rat: Option<String>,
    pub last_seen_at: Option<DateTime<Utc>>,
    /// Bytes; null until the provider reports the data quota.
    pub data_total: Option<i64>,
    pub data_remaining: Option<i64>,
    pub data_expiry: Option<DateTime<Utc>>,
    pub sms_total: Option<i64>,
    pub sms_remaining: Option<i64>,
    pub sms_expiry: Option<DateTime<Utc>>,
    pub registered_at: DateTime<Utc>,
    pub terminated_at: Option<DateTime<Utc>>,
    /// The SIM aggregate's version (the command API's `If-Match`).
    pub version: i64,
    /// The global position of the last event applied to this row (the `ETag`).
    pub last_position: i64,
    pub updated_at: DateTime<Utc>,
    /// `complete`, or `parked` while an event of this SIM (its own, its quotas' or its
    /// messages') could not be applied and waits in `parked_events`: the row may be behind the
    /// log until `projectors replay-parked` applies it.
    #[serde(default = "complete")]
    #[cfg_attr(feature = "openapi", schema(example = "complete"))]
    pub projection: String,
    /// Provider controls: `{auto_topup: bool | null (as 1NCE confirmed it; null until set
    /// through the platform), last_auto_topup, last_reset}`, each last request `{request_id,
    /// requested_at, enabled? (auto top-up), state: pending | completed | failed | unknown,
    /// reason? (1NCE's message when failed), settled_at?}` or null. A pending auto top-up
    /// change is `last_auto_topup.state == "pending"`.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub controls: sqlx::types::Json<SimControls>,
}

impl SimView {
    /// The row of a SIM just registered: `inactive`, nothing else known yet (no quota, no
    /// connectivity), version 0 and position 0 until its registration event's are set.
    pub fn registered(
        iccid: impl Into<String>,
        imsi: impl Into<String>,
        registered_at: DateTime<Utc>,
    ) -> Self {
        Self {
            iccid: iccid.into(),
            imsi: imsi.into(),
            msisdn: None,
            label: None,
            tags: Vec::new(),
            status: SimStatus::Inactive,
            pending_change: None,
            provider_status: None,
            imei: None,
            imei_lock: false,
            ip_address: None,
            network: None,
            country: None,
            rat: None,
            last_seen_at: None,
            data_total: None,
            data_remaining: None,
            data_expiry: None,
            sms_total: None,
            sms_remaining: None,
            sms_expiry: None,
            registered_at,
            terminated_at: None,
            version: 0,
            last_position: 0,
            updated_at: registered_at,
            projection: PROJECTION_COMPLETE.to_owned(),
            controls: Default::default(),
        }
    }
}

/// The [`SimView::projection`] of a row that every event reached.
pub const PROJECTION_COMPLETE: &str = "complete";
/// The [`SimView::projection`] of a row with parked events.
pub const PROJECTION_PARKED: &str = "parked";

fn complete() -> String {
    PROJECTION_COMPLETE.to_owned()
}

/// The `sims` columns in [`SimView`]'s order, for `SELECT {SIM_COLUMNS} FROM sims …`.
pub const SIM_COLUMNS: &str =
    "iccid, imsi, msisdn, label, tags, status, pending_change, provider_status, imei, \
     imei_lock, ip_address, network, country, rat, last_seen_at, data_total, data_remaining, data_expiry, \
     sms_total, sms_remaining, sms_expiry, registered_at, terminated_at, version, last_position, updated_at, \
     projection, controls";

pub async fn load_sim(pool: &PgPool, iccid: &str) -> Result<Option<SimView>, sqlx::Error> {
    sqlx::query_as(&format!("SELECT {SIM_COLUMNS} FROM sims WHERE iccid = $1"))
        .bind(iccid)
        .fetch_optional(pool)
        .await
}

/// The rows of these SIMs (those that exist).
pub async fn load_sims(pool: &PgPool, iccids: &[String]) -> Result<Vec<SimView>, sqlx::Error> {
    sqlx::query_as(&format!("SELECT {SIM_COLUMNS} FROM sims WHERE iccid = ANY($1)"))
        .bind(iccids)
        .fetch_all(pool)
        .await
}

/// Whether the `sims` read model has the SIM.
pub async fn sim_exists(pool: &PgPool, iccid: &str) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM sims WHERE iccid = $1)")
        .bind(iccid)
        .fetch_one(pool)
        .await
}

/// The rows of these SIMs, by ICCID, on the caller's connection (a projector's batch).
pub async fn load_sims_by_iccid(
    conn: &mut PgConnection,
    iccids: &[String],
) -> Result<HashMap<String, SimView>, sqlx::Error> {
    load_keyed(conn, SIM_COLUMNS, "sims", "iccid", iccids, |row: &SimView| {
        row.iccid.clone()
    })
    .await
}

/// Writes these rows as they are (inserted or replaced whole).
pub async fn upsert_sims(conn: &mut PgConnection, rows: &[&SimView]) -> Result<(), sqlx::Error> {
    if rows.is_empty() {
        return Ok(());
    }
    let tags: Vec<Value> = rows.iter().map(|r| json_array(&r.tags)).collect();
    let statuses: Vec<&str> = rows.iter().map(|r| r.status.as_str()).collect();
    let controls: Vec<Value> = rows
        .iter()
        .map(|r| serde_json::to_value(&r.controls.0).unwrap_or_else(|_| Value::Object(Default::default())))
        .collect();
    // `projection` is kept: a parked SIM stays parked until its events are replayed.
    let sql = format!(
        "INSERT INTO sims ({SIM_COLUMNS}) \
         SELECT u.iccid, u.imsi, u.msisdn, u.label, ARRAY(SELECT jsonb_array_elements_text(u.tags)), u.status, \
           u.pending_change, u.provider_status, u.imei, u.imei_lock, u.ip_address, u.network, u.country, u.rat, \
           u.last_seen_at, u.data_total, u.data_remaining, u.data_expiry, u.sms_total, u.sms_remaining, \
           u.sms_expiry, u.registered_at, u.terminated_at, u.version, u.last_position, u.updated_at, u.projection, \
           u.controls \
         FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[], $5::jsonb[], $6::text[], $7::text[], \
           $8::text[], $9::text[], $10::bool[], $11::text[], $12::text[], $13::text[], $14::text[], \
           $15::timestamptz[], $16::int8[], $17::int8[], $18::timestamptz[], $19::int8[], $20::int8[], \
           $21::timestamptz[], $22::timestamptz[], $23::timestamptz[], $24::int8[], $25::int8[], \
           $26::timestamptz[], $27::text[], $28::jsonb[]) AS u({SIM_COLUMNS}) {}",
        replace_on_conflict("iccid", SIM_COLUMNS, &["projection"])
    );
    let query = bind_columns!(sqlx::query(&sql), rows; iccid, imsi, msisdn, label)
        .bind(tags)
        .bind(statuses);
    bind_columns!(query, rows;
        pending_change, provider_status, imei, imei_lock, ip_address, network, country, rat,
        last_seen_at, data_total, data_remaining, data_expiry, sms_total, sms_remaining, sms_expiry,
        registered_at, terminated_at, version, last_position, updated_at, projection)
    .bind(controls)
    .execute(conn)
    .await?;
    Ok(())
}

/// Marks the SIM's row `parked` (an event of it could not be applied), or `complete` again.
pub async fn set_projection(conn: &mut PgConnection, iccid: &str, parked: bool) -> Result<(), sqlx::Error> {
    let state = if parked {
        PROJECTION_PARKED
    } else {
        PROJECTION_COMPLETE
    };
    sqlx::query("UPDATE sims SET projection = $2 WHERE iccid = $1 AND projection <> $2")
        .bind(iccid)
        .bind(state)
        .execute(conn)
        .await?;
    Ok(())
}
