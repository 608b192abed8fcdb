use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::PgPool;

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
    pub status: String,
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
            status: "inactive".to_owned(),
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
     projection";

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

/// Sums over one quota kind across the fleet.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct QuotaTotals {
    pub total: i64,
    pub remaining: i64,
    pub exhausted: i64,
    pub expired: i64,
    pub topups_pending: i64,
}

/// `GET /fleet/summary`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct FleetSummary {
    pub sims_total: i64,
    /// Every status, zero included, so dashboards need not guess the keys.
    #[cfg_attr(feature = "openapi", schema(value_type = Object, additional_properties))]
    pub sims_by_status: BTreeMap<String, i64>,
    pub changes_pending: i64,
    pub data: QuotaTotals,
    pub sms: QuotaTotals,
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub sms_messages_by_status: BTreeMap<String, i64>,
    /// The highest global position reflected in the read models.
    pub as_of_position: i64,
}

pub async fn load_fleet_summary(pool: &PgPool) -> Result<FleetSummary, sqlx::Error> {
    let mut summary = FleetSummary::default();
    for status in ["inactive", "active", "suspended", "terminated"] {
        summary.sims_by_status.insert(status.to_owned(), 0);
    }
    let rows: Vec<(String, i64)> = sqlx::query_as("SELECT status, count(*) FROM sims GROUP BY status")
        .fetch_all(pool)
        .await?;
    for (status, count) in rows {
        summary.sims_total += count;
        summary.sims_by_status.insert(status, count);
    }
    summary.changes_pending =
        sqlx::query_scalar("SELECT count(*) FROM sims WHERE pending_change IS NOT NULL")
            .fetch_one(pool)
            .await?;
    let quotas: Vec<(String, i64, i64, i64, i64, i64)> = sqlx::query_as(
        "SELECT kind, coalesce(sum(total), 0)::bigint, coalesce(sum(remaining), 0)::bigint, \
         count(*) FILTER (WHERE exhausted), count(*) FILTER (WHERE expired), \
         count(*) FILTER (WHERE pending_topup_id IS NOT NULL) FROM sim_quotas GROUP BY kind",
    )
    .fetch_all(pool)
    .await?;
    for (kind, total, remaining, exhausted, expired, topups_pending) in quotas {
        let totals = QuotaTotals {
            total,
            remaining,
            exhausted,
            expired,
            topups_pending,
        };
        match kind.as_str() {
            "data" => summary.data = totals,
            _ => summary.sms = totals,
        }
    }
    let sms: Vec<(String, i64)> = sqlx::query_as("SELECT status, count(*) FROM sms_messages GROUP BY status")
        .fetch_all(pool)
        .await?;
    summary.sms_messages_by_status = sms.into_iter().collect();
    summary.as_of_position =
        sqlx::query_scalar("SELECT coalesce(max(position), 0)::bigint FROM projection_checkpoints")
            .fetch_one(pool)
            .await?;
    Ok(summary)
}
