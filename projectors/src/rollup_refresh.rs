//! Keeping TimescaleDB's continuous aggregates exact after late usage rows.
//!
//! With real-time aggregation a continuous aggregate answers from its materialized buckets
//! below its refresh horizon and from `sim_usage` above it. A usage row written below the
//! horizon (a report that arrives late, a rebuild's inserts) is only logged as an invalidation:
//! the aggregate keeps answering the old sum until that range is refreshed, and the refresh
//! policies only look 3 days (hourly) or 30 days (daily) back. So the writer of such rows
//! registers their UTC day in `usage_rollup_refreshes`, in the transaction that writes them,
//! and a [`Refresher`] refreshes every registered day right after the commit (and on start and
//! every few seconds, for what a crash left). The query API's consistency wait waits for the
//! days registered by the events before its token, so read-your-writes stays exact.
//! On plain PostgreSQL the rollups are tables written in the same transaction; nothing here
//! runs.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use sqlx::{PgConnection, PgPool};
use tokio::sync::{watch, Notify};

use readmodel::UsageRow;

/// The continuous aggregates over `sim_usage` (migrations 20261128000003 and 20261202000004).
pub const CONTINUOUS_AGGREGATES: [&str; 4] = [
    "sim_usage_hourly",
    "sim_usage_daily",
    "fleet_usage_hourly",
    "fleet_usage_daily",
];

/// How often the refresher looks for days left registered (a crash between a commit and its
/// refresh, a refresh that failed).
const SWEEP: Duration = Duration::from_secs(5);

/// Days refreshed per sweep query.
const DAYS_PER_ROUND: i64 = 64;

/// Registers the days of the rows that may lie below a refresh horizon: rows observed more than
/// 55 minutes before the database's clock. The tightest policy (hourly) ends an hour before
/// now, at an hour's boundary, so a younger row is always above every horizon the policies
/// set; the 5 minutes are a margin for the policy job's own clock. A rebuild's refresh ends at
/// the same horizons ([`refresh_all`]).
pub async fn register(conn: &mut PgConnection, rows: &[&UsageRow]) -> Result<(), sqlx::Error> {
    if rows.is_empty() {
        return Ok(());
    }
    let observed: Vec<DateTime<Utc>> = rows.iter().map(|r| r.observed_at).collect();
    // An event read without its transaction id counts as the log's start: a token then waits
    // for the refresh whatever it names (never too little).
    let transactions: Vec<String> = rows
        .iter()
        .map(|r| r.transaction_id.unwrap_or(0).to_string())
        .collect();
    let positions: Vec<i64> = rows.iter().map(|r| r.position).collect();
    sqlx::query(
        "INSERT INTO usage_rollup_refreshes AS r (day, first_transaction, first_position) \
         SELECT DISTINCT ON (day) day, tx, pos FROM ( \
             SELECT date_bin(INTERVAL '1 day', o, TIMESTAMPTZ 'epoch') AS day, x::xid8 AS tx, p AS pos \
             FROM UNNEST($1::timestamptz[], $2::text[], $3::int8[]) AS u(o, x, p) \
             WHERE o < clock_timestamp() - INTERVAL '55 minutes' \
         ) late ORDER BY day, tx, pos \
         ON CONFLICT (day) DO UPDATE SET \
             registrations = r.registrations + 1, \
             first_transaction = CASE WHEN (EXCLUDED.first_transaction, EXCLUDED.first_position) \
                 < (r.first_transaction, r.first_position) THEN EXCLUDED.first_transaction ELSE r.first_transaction END, \
             first_position = CASE WHEN (EXCLUDED.first_transaction, EXCLUDED.first_position) \
                 < (r.first_transaction, r.first_position) THEN EXCLUDED.first_position ELSE r.first_position END",
    )
    .bind(observed)
    .bind(transactions)
    .bind(positions)
    .execute(conn)
    .await?;
    Ok(())
}

/// Refreshes every registered day in each continuous aggregate and removes the registrations
/// it has seen; returns the days refreshed. `CALL refresh_continuous_aggregate` must run
/// outside a transaction block, so it goes as a simple query on a pool connection.
pub async fn refresh_registered(pool: &PgPool) -> Result<usize, sqlx::Error> {
    let mut refreshed = 0;
    loop {
        let days: Vec<(DateTime<Utc>, i64)> =
            sqlx::query_as("SELECT day, registrations FROM usage_rollup_refreshes ORDER BY day LIMIT $1")
                .bind(DAYS_PER_ROUND)
                .fetch_all(pool)
                .await?;
        if days.is_empty() {
            return Ok(refreshed);
        }
        for (day, registrations) in &days {
            refresh_window(pool, *day, *day + TimeDelta::days(1)).await?;
            // A registration that came in meanwhile stays for the next round.
            sqlx::query("DELETE FROM usage_rollup_refreshes WHERE day = $1 AND registrations = $2")
                .bind(day)
                .bind(registrations)
                .execute(pool)
                .await?;
            refreshed += 1;
        }
    }
}

/// Refreshes `[start, end)` in every continuous aggregate (the rollups of that range then equal
/// a recomputation from `sim_usage`).
async fn refresh_window(pool: &PgPool, start: DateTime<Utc>, end: DateTime<Utc>) -> Result<(), sqlx::Error> {
    for view in CONTINUOUS_AGGREGATES {
        // One CALL per simple query: several in one would be a transaction block.
        sqlx::raw_sql(&format!(
            "CALL refresh_continuous_aggregate('{view}', '{}'::timestamptz, '{}'::timestamptz)",
            start.to_rfc3339(),
            end.to_rfc3339()
        ))
        .execute(pool)
        .await?;
    }
    Ok(())
}

/// After a rebuild: every registered day, then the rest of each aggregate up to the horizon
/// its policy keeps (`end_offset`: an hour for the hourly ones, a day for the daily ones), so
/// the newest buckets stay real-time as the policies leave them.
pub async fn refresh_all(pool: &PgPool) -> Result<Vec<String>, sqlx::Error> {
    refresh_registered(pool).await?;
    let mut refreshed = Vec::new();
    for view in CONTINUOUS_AGGREGATES {
        let horizon = if view.ends_with("_hourly") {
            "date_trunc('hour', now() - INTERVAL '1 hour')"
        } else {
            "date_trunc('day', now() - INTERVAL '1 day')"
        };
        let end: DateTime<Utc> = sqlx::query_scalar(&format!("SELECT {horizon}"))
            .fetch_one(pool)
            .await?;
        sqlx::raw_sql(&format!(
            "CALL refresh_continuous_aggregate('{view}', NULL, '{}'::timestamptz)",
            end.to_rfc3339()
        ))
        .execute(pool)
        .await?;
        refreshed.push(view.to_owned());
    }
    Ok(refreshed)
}

/// Refreshes registered days as soon as a writer says it registered some, and every few
/// seconds; one per projector process part, single-flight.
#[derive(Clone)]
pub struct Refresher {
    pool: PgPool,
    wake: Arc<Notify>,
}

impl Refresher {
    pub fn new(pool: PgPool) -> Self {
        Self {
            pool,
            wake: Arc::new(Notify::new()),
        }
    }

    /// A commit registered days: refresh them now (coalesced with a refresh under way).
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// Runs until shutdown.
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) {
        loop {
            match refresh_registered(&self.pool).await {
                Ok(0) => {}
                Ok(days) => tracing::debug!(days, "continuous aggregates refreshed after late usage"),
                Err(error) => tracing::warn!(%error, "refreshing continuous aggregates failed; retrying"),
            }
            tokio::select! {
                _ = shutdown.wait_for(|stop| *stop) => return,
                () = self.wake.notified() => {}
                () = tokio::time::sleep(SWEEP) => {}
            }
        }
    }
}
