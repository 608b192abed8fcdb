//! The fleet summary (`GET /fleet/summary`): sums over the `sims`, `sim_quotas` and
//! `sms_messages` read models, computed by the query API (at most once a second, see its state).

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use domain::{SimStatus, Spelled};
use serde::{Deserialize, Serialize};
use sqlx::PgPool;

/// Sums over one quota kind across the fleet.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct QuotaTotals {
    pub total: i64,
    pub remaining: i64,
    /// Quotas at least 80 % used with something left (`quota_state=warning`).
    pub warning: i64,
    /// Quotas used up whose 100 % alert was recorded.
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
    /// Quotas whose last top-up failed at the provider.
    #[serde(default)]
    pub topups_failed: i64,
    /// Quotas whose last top-up has no known outcome (the provider never answered).
    #[serde(default)]
    pub topups_outcome_unknown: i64,
    /// Sync freshness: of the SIMs not terminated, the one whose newest usage report is the
    /// oldest — that report's observation time (null when no SIM has reported usage).
    #[serde(default)]
    pub oldest_usage_report_at: Option<DateTime<Utc>>,
    /// SIMs not terminated that have reported no usage yet.
    #[serde(default)]
    pub sims_without_usage_report: i64,
    /// The highest global position reflected in the read models.
    pub as_of_position: i64,
}

pub async fn load_fleet_summary(pool: &PgPool) -> Result<FleetSummary, sqlx::Error> {
    let mut summary = FleetSummary::default();
    for status in SimStatus::ALL.iter().map(|s| s.as_str()) {
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
    // Freshness: the first entry of the partial index `sims_usage_reported_at`, and its nulls.
    (summary.oldest_usage_report_at, summary.sims_without_usage_report) = sqlx::query_as(
        "SELECT (SELECT min(usage_reported_at) FROM sims WHERE status <> 'terminated'), \
         (SELECT count(*) FROM sims WHERE status <> 'terminated' AND usage_reported_at IS NULL)",
    )
    .fetch_one(pool)
    .await?;
    type QuotaSums = (String, i64, i64, i64, i64, i64, i64, i64, i64);
    let quotas: Vec<QuotaSums> = sqlx::query_as(
        "SELECT kind, coalesce(sum(total), 0)::bigint, coalesce(sum(remaining), 0)::bigint, \
         count(*) FILTER (WHERE quota_state(total, remaining) = 'warning'), \
         count(*) FILTER (WHERE exhausted), count(*) FILTER (WHERE expired), \
         count(*) FILTER (WHERE pending_topup_id IS NOT NULL), \
         count(*) FILTER (WHERE pending_topup_id IS NULL AND last_topup_status = 'failed'), \
         count(*) FILTER (WHERE pending_topup_id IS NULL AND last_topup_status = 'unknown') \
         FROM sim_quotas GROUP BY kind",
    )
    .fetch_all(pool)
    .await?;
    for (kind, total, remaining, warning, exhausted, expired, topups_pending, failed, unknown) in quotas {
        summary.topups_failed += failed;
        summary.topups_outcome_unknown += unknown;
        let totals = QuotaTotals {
            total,
            remaining,
            warning,
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
    // The projectors' interface to their checkpoints (`migrations/20261205000001_…`).
    summary.as_of_position = sqlx::query_scalar("SELECT projection_position()")
        .fetch_one(pool)
        .await?;
    Ok(summary)
}
