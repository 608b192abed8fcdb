//! The `fleet_history` read model: what each event did to the fleet summary's figures, so the
//! summary can be answered as of any past instant (`GET /fleet/summary?as_of=`, the dashboard's
//! time slider). Every figure is a sum over read-model rows ([`crate::fleet`]); when the
//! projectors change a row they record the row's contribution after the event minus before
//! ([`Figures`]), at the event's `recorded_at`, and add it to the hour's sum
//! (`fleet_history_hourly`). A figure as of T = the hours before T's hour plus the changes of
//! T's hour up to T: a few thousand rows, whatever the size of the fleet.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, DurationRound, TimeDelta, Utc};
use domain::{QuotaState, SimStatus, Spelled};
use serde::{Deserialize, Serialize};
use sqlx::{PgConnection, PgPool};

use crate::bulk::column;
use crate::fleet::QuotaTotals;
use crate::{QuotaRow, SimView, SmsRow};

/// One figure's change by one event (`position` 0: the opening balance of an installation
/// whose read models were filled before the history existed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FleetChange {
    pub position: i64,
    pub metric: String,
    pub recorded_at: DateTime<Utc>,
    pub delta: i64,
}

/// Figures by name (`sims.active`, `data.remaining`, `sms_messages.delivered`, …): what rows
/// contribute, or a difference of contributions.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Figures(pub BTreeMap<String, i64>);

impl Figures {
    fn add(&mut self, metric: String, value: i64) {
        if value != 0 {
            *self.0.entry(metric).or_default() += value;
        }
    }

    /// Adds `sign` times what a SIM row contributes (`sign` -1: takes it away).
    pub fn sim(&mut self, row: &SimView, sign: i64) {
        self.add(format!("sims.{}", row.status.as_str()), sign);
        if row.pending_change.is_some() {
            self.add("sims.changes_pending".into(), sign);
        }
    }

    /// Adds `sign` times what a quota row contributes.
    pub fn quota(&mut self, row: &QuotaRow, sign: i64) {
        let kind = &row.kind;
        self.add(format!("{kind}.total"), sign * row.total);
        self.add(format!("{kind}.remaining"), sign * row.remaining);
        let flags = [
            (
                "warning",
                QuotaState::of(row.total, row.remaining) == QuotaState::Warning,
            ),
            ("exhausted", row.exhausted),
            ("expired", row.expired),
            ("topups_pending", row.pending_topup_id.is_some()),
        ];
        for (name, set) in flags {
            if set {
                self.add(format!("{kind}.{name}"), sign);
            }
        }
    }

    /// Adds `sign` times what an SMS row contributes.
    pub fn sms(&mut self, row: &SmsRow, sign: i64) {
        self.add(format!("sms_messages.{}", row.status.as_str()), sign);
    }

    /// The non-zero differences, as one event's changes.
    pub fn changes(self, position: i64, recorded_at: DateTime<Utc>) -> impl Iterator<Item = FleetChange> {
        self.0
            .into_iter()
            .filter(|(_, delta)| *delta != 0)
            .map(move |(metric, delta)| FleetChange {
                position,
                metric,
                recorded_at,
                delta,
            })
    }

    fn get(&self, metric: &str) -> i64 {
        self.0.get(metric).copied().unwrap_or(0)
    }

    fn quota_totals(&self, kind: &str) -> QuotaTotals {
        let get = |name: &str| self.get(&format!("{kind}.{name}"));
        QuotaTotals {
            total: get("total"),
            remaining: get("remaining"),
            warning: get("warning"),
            exhausted: get("exhausted"),
            expired: get("expired"),
            topups_pending: get("topups_pending"),
        }
    }
}

/// Inserts the changes (a replayed event adds nothing twice: keyed by position and figure) and
/// adds the new ones to their hours, in key order (so projectors adding to the same hours lock
/// them in the same order), in one statement.
pub async fn insert_fleet_changes(conn: &mut PgConnection, rows: &[FleetChange]) -> Result<(), sqlx::Error> {
    if rows.is_empty() {
        return Ok(());
    }
    let new: Vec<(i64, String)> = sqlx::query_as(
        "INSERT INTO fleet_history (position, metric, recorded_at, delta) \
         SELECT * FROM UNNEST($1::int8[], $2::text[], $3::timestamptz[], $4::int8[]) \
         ON CONFLICT DO NOTHING RETURNING position, metric",
    )
    .bind(column!(rows, position))
    .bind(column!(rows, metric))
    .bind(column!(rows, recorded_at))
    .bind(column!(rows, delta))
    .fetch_all(&mut *conn)
    .await?;
    let new: std::collections::HashSet<(i64, String)> = new.into_iter().collect();
    let mut hours: BTreeMap<(DateTime<Utc>, String), i64> = BTreeMap::new();
    for row in rows
        .iter()
        .filter(|r| new.contains(&(r.position, r.metric.clone())))
    {
        let bucket = hour_of(row.recorded_at);
        *hours.entry((bucket, row.metric.clone())).or_default() += row.delta;
    }
    let (mut buckets, mut metrics, mut deltas) = (vec![], vec![], vec![]);
    for ((bucket, metric), delta) in hours {
        buckets.push(bucket);
        metrics.push(metric);
        deltas.push(delta);
    }
    sqlx::query(
        "INSERT INTO fleet_history_hourly (bucket, metric, delta) \
         SELECT u.bucket, u.metric, u.delta FROM UNNEST($1::timestamptz[], $2::text[], $3::int8[]) \
           WITH ORDINALITY AS u(bucket, metric, delta, n) ORDER BY u.n \
         ON CONFLICT (bucket, metric) DO UPDATE SET delta = fleet_history_hourly.delta + EXCLUDED.delta",
    )
    .bind(buckets)
    .bind(metrics)
    .bind(deltas)
    .execute(conn)
    .await?;
    Ok(())
}

/// The start of the hour (UTC) `at` falls in.
fn hour_of(at: DateTime<Utc>) -> DateTime<Utc> {
    at.duration_trunc(TimeDelta::hours(1)).unwrap_or(at)
}

/// `GET /fleet/summary?as_of=`: the summary's figures as the fleet was at `as_of`. A figure
/// the record cannot tell is null, and `unknown` says why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct FleetSummaryAsOf {
    /// The instant asked for.
    pub as_of: DateTime<Utc>,
    pub sims_total: Option<i64>,
    /// Every status, zero included.
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>, additional_properties))]
    pub sims_by_status: Option<BTreeMap<String, i64>>,
    pub changes_pending: Option<i64>,
    pub data: Option<QuotaTotals>,
    pub sms: Option<QuotaTotals>,
    /// Statuses with at least one message.
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    pub sms_messages_by_status: Option<BTreeMap<String, i64>>,
    /// The global position of the last event at or before `as_of` that changed a figure (0:
    /// none).
    pub as_of_position: i64,
    /// The figures answered null, each with the reason (empty: every figure is known).
    #[cfg_attr(feature = "openapi", schema(value_type = Object, additional_properties))]
    pub unknown: BTreeMap<String, String>,
}

/// The summary as of `as_of` (not in the future: the caller checks).
pub async fn load_fleet_summary_as_of(
    pool: &PgPool,
    as_of: DateTime<Utc>,
) -> Result<FleetSummaryAsOf, sqlx::Error> {
    let origin: Option<(DateTime<Utc>, String)> =
        sqlx::query_as("SELECT since, reason FROM fleet_history_origin ORDER BY since DESC LIMIT 1")
            .fetch_optional(pool)
            .await?;
    if let Some((since, reason)) = origin.filter(|(since, _)| as_of < *since) {
        return statuses_before_history(pool, as_of, since, &reason).await;
    }
    let hour = hour_of(as_of);
    let sums: Vec<(String, i64)> = sqlx::query_as(
        "SELECT metric, sum(delta)::bigint FROM ( \
             SELECT metric, delta FROM fleet_history_hourly WHERE bucket < $1 \
             UNION ALL \
             SELECT metric, delta FROM fleet_history WHERE recorded_at >= $1 AND recorded_at <= $2 \
         ) changes GROUP BY metric",
    )
    .bind(hour)
    .bind(as_of)
    .fetch_all(pool)
    .await?;
    let figures = Figures(sums.into_iter().collect());
    let as_of_position: Option<i64> = sqlx::query_scalar(
        "SELECT position FROM fleet_history WHERE recorded_at <= $1 \
         ORDER BY recorded_at DESC, position DESC LIMIT 1",
    )
    .bind(as_of)
    .fetch_optional(pool)
    .await?;
    let by_status = statuses(|status| figures.get(&format!("sims.{status}")));
    Ok(FleetSummaryAsOf {
        as_of,
        sims_total: Some(by_status.values().sum()),
        sims_by_status: Some(by_status),
        changes_pending: Some(figures.get("sims.changes_pending")),
        data: Some(figures.quota_totals("data")),
        sms: Some(figures.quota_totals("sms")),
        sms_messages_by_status: Some(
            figures
                .0
                .iter()
                .filter_map(|(metric, n)| Some((metric.strip_prefix("sms_messages.")?.to_owned(), *n)))
                .filter(|(_, n)| *n != 0)
                .collect(),
        ),
        as_of_position: as_of_position.unwrap_or(0),
        unknown: BTreeMap::new(),
    })
}

/// Every SIM status with its count (zero when `count` has none).
fn statuses(count: impl Fn(&str) -> i64) -> BTreeMap<String, i64> {
    SimStatus::ALL
        .iter()
        .map(|s| (s.as_str().to_owned(), count(s.as_str())))
        .collect()
}

/// Before the history's origin only the statuses are known: each SIM's last change at or
/// before `as_of` in `sim_status_history` (complete from the first event). A fallback: it
/// reads every status change up to `as_of`.
async fn statuses_before_history(
    pool: &PgPool,
    as_of: DateTime<Utc>,
    since: DateTime<Utc>,
    reason: &str,
) -> Result<FleetSummaryAsOf, sqlx::Error> {
    let rows: Vec<(String, i64, i64)> = sqlx::query_as(
        "SELECT to_status, count(*), max(position) FROM ( \
             SELECT DISTINCT ON (iccid) to_status, position FROM sim_status_history \
             WHERE changed_at <= $1 ORDER BY iccid, position DESC \
         ) latest GROUP BY to_status",
    )
    .bind(as_of)
    .fetch_all(pool)
    .await?;
    let counts: HashMap<String, i64> = rows.iter().map(|(s, n, _)| (s.clone(), *n)).collect();
    let by_status = statuses(|status| counts.get(status).copied().unwrap_or(0));
    let why = format!("not recorded before {}: {reason}", since.to_rfc3339());
    Ok(FleetSummaryAsOf {
        as_of,
        sims_total: Some(by_status.values().sum()),
        sims_by_status: Some(by_status),
        changes_pending: None,
        data: None,
        sms: None,
        sms_messages_by_status: None,
        as_of_position: rows.iter().map(|(_, _, p)| *p).max().unwrap_or(0),
        unknown: ["changes_pending", "data", "sms", "sms_messages_by_status"]
            .into_iter()
            .map(|figure| (figure.to_owned(), why.clone()))
            .collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_change_of_status_moves_one_sim_between_figures() {
        let now = Utc::now();
        let mut before = SimView::registered("8988303000000000001", "901405100000001", now);
        before.pending_change = Some("activation".into());
        let mut after = before.clone();
        after.status = SimStatus::Active;
        after.pending_change = None;
        let mut figures = Figures::default();
        figures.sim(&before, -1);
        figures.sim(&after, 1);
        let changes: Vec<(String, i64)> = figures.changes(7, now).map(|c| (c.metric, c.delta)).collect();
        assert_eq!(
            changes,
            vec![
                ("sims.active".to_owned(), 1),
                ("sims.changes_pending".to_owned(), -1),
                ("sims.inactive".to_owned(), -1)
            ]
        );
    }
}
