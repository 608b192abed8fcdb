//! The usage read models: `sim_usage` (a row per usage report), the hourly and daily rollups
//! per SIM and for the fleet (tables the projectors add to on plain Postgres; continuous
//! aggregates with TimescaleDB). Written by the projectors, read by the query API
//! ([`usage_points`]).

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::{PgConnection, PgPool};

use crate::bulk::column;

/// A `sim_usage` row (what one usage report added).
#[derive(Debug, Clone, PartialEq)]
pub struct UsageRow {
    pub iccid: String,
    pub observed_at: DateTime<Utc>,
    pub position: i64,
    /// The event's transaction (not stored in `sim_usage`; a late row's registration for a
    /// continuous-aggregate refresh records it, see `rollup_refresh`).
    pub transaction_id: Option<u64>,
    pub data_bytes: i64,
    pub sms_mo: i64,
    pub sms_mt: i64,
}

/// Inserts the usage rows and returns the positions of those that were new (a replayed
/// report adds nothing twice).
pub async fn insert_usage(conn: &mut PgConnection, rows: &[UsageRow]) -> Result<Vec<i64>, sqlx::Error> {
    if rows.is_empty() {
        return Ok(Vec::new());
    }
    sqlx::query_scalar(
        "INSERT INTO sim_usage (iccid, observed_at, position, data_bytes, sms_mo, sms_mt) \
         SELECT * FROM UNNEST($1::text[], $2::timestamptz[], $3::int8[], $4::int8[], $5::int8[], $6::int8[]) \
         ON CONFLICT DO NOTHING RETURNING position",
    )
    .bind(column!(rows, iccid))
    .bind(column!(rows, observed_at))
    .bind(column!(rows, position))
    .bind(column!(rows, data_bytes))
    .bind(column!(rows, sms_mo))
    .bind(column!(rows, sms_mt))
    .fetch_all(conn)
    .await
}

/// Moves each SIM's `usage_reported_at` forward to its newest usage row here (never back: a
/// late report of an older period leaves it), for the fleet's sync freshness. Rows go in ICCID
/// order, so two projectors updating the same SIMs lock them in the same order.
pub async fn mark_usage_reported(conn: &mut PgConnection, rows: &[UsageRow]) -> Result<(), sqlx::Error> {
    let mut newest: std::collections::BTreeMap<&str, DateTime<Utc>> = std::collections::BTreeMap::new();
    for row in rows {
        let at = newest.entry(&row.iccid).or_insert(row.observed_at);
        *at = (*at).max(row.observed_at);
    }
    if newest.is_empty() {
        return Ok(());
    }
    let (iccids, times): (Vec<&str>, Vec<DateTime<Utc>>) = newest.into_iter().unzip();
    sqlx::query(
        "UPDATE sims SET usage_reported_at = greatest(sims.usage_reported_at, u.at) \
         FROM UNNEST($1::text[], $2::timestamptz[]) AS u(iccid, at) \
         WHERE sims.iccid = u.iccid AND sims.usage_reported_at IS DISTINCT FROM greatest(sims.usage_reported_at, u.at)",
    )
    .bind(iccids)
    .bind(times)
    .execute(conn)
    .await?;
    Ok(())
}

/// Sets every SIM's `usage_reported_at` from `sim_usage` (the end of a rebuild, whose pages
/// write usage before the SIM rows).
pub async fn mark_all_usage_reported(conn: &mut PgConnection) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE sims SET usage_reported_at = u.last \
         FROM (SELECT iccid, max(observed_at) AS last FROM sim_usage GROUP BY iccid) u \
         WHERE u.iccid = sims.iccid AND sims.usage_reported_at IS DISTINCT FROM u.last",
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// Adds `(data, mo, mt)` per `(iccid, bucket)` into a rollup table (plain Postgres only); a
/// `fleet_*` table has no SIM column (its keys' ICCIDs are empty). Rows go in key order, so
/// two projectors adding to the same fleet buckets lock them in the same order.
pub async fn add_rollups(
    conn: &mut PgConnection,
    table: &str,
    sums: &HashMap<(String, DateTime<Utc>), [i64; 3]>,
) -> Result<(), sqlx::Error> {
    if sums.is_empty() {
        return Ok(());
    }
    let mut sorted: Vec<_> = sums.iter().collect();
    sorted.sort_by(|a, b| a.0.cmp(b.0));
    let (mut iccids, mut buckets, mut data, mut mo, mut mt) = (vec![], vec![], vec![], vec![], vec![]);
    for ((iccid, bucket), [d, o, t]) in sorted {
        iccids.push(iccid.clone());
        buckets.push(*bucket);
        data.push(*d);
        mo.push(*o);
        mt.push(*t);
    }
    let fleet = table.starts_with("fleet_");
    let (columns, key, values) = if fleet {
        ("bucket", "bucket", "u.bucket")
    } else {
        ("iccid, bucket", "iccid, bucket", "u.iccid, u.bucket")
    };
    sqlx::query(&format!(
        "INSERT INTO {table} ({columns}, data_bytes, sms_mo, sms_mt) \
         SELECT {values}, u.data_bytes, u.sms_mo, u.sms_mt \
         FROM UNNEST($1::text[], $2::timestamptz[], $3::int8[], $4::int8[], $5::int8[]) \
           WITH ORDINALITY AS u(iccid, bucket, data_bytes, sms_mo, sms_mt, n) ORDER BY u.n \
         ON CONFLICT ({key}) DO UPDATE SET data_bytes = {table}.data_bytes + EXCLUDED.data_bytes, \
         sms_mo = {table}.sms_mo + EXCLUDED.sms_mo, sms_mt = {table}.sms_mt + EXCLUDED.sms_mt"
    ))
    .bind(iccids)
    .bind(buckets)
    .bind(data)
    .bind(mo)
    .bind(mt)
    .execute(conn)
    .await?;
    Ok(())
}

/// What one bucket added: bytes of data, SMS sent by the device (MO) and to it (MT).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, sqlx::FromRow)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct UsagePoint {
    /// The bucket's start (UTC; hours, or days starting at 00:00 UTC).
    pub bucket: DateTime<Utc>,
    pub data_bytes: i64,
    pub sms_mo: i64,
    pub sms_mt: i64,
}

/// The buckets of `table` (a per-SIM rollup with `iccid`, or a fleet rollup without) starting
/// in `[from, to)`, oldest first. The same query whether the rollups are tables or
/// continuous aggregates.
pub async fn usage_points(
    pool: &PgPool,
    table: &str,
    iccid: Option<&str>,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<Vec<UsagePoint>, sqlx::Error> {
    let sim = if iccid.is_some() { "iccid = $3 AND " } else { "" };
    let sql = format!(
        "SELECT bucket, data_bytes::bigint AS data_bytes, sms_mo::bigint AS sms_mo, sms_mt::bigint AS sms_mt \
         FROM {table} WHERE {sim}bucket >= $1 AND bucket < $2 ORDER BY bucket"
    );
    let mut query = sqlx::query_as::<_, UsagePoint>(&sql).bind(from).bind(to);
    if let Some(iccid) = iccid {
        query = query.bind(iccid.to_owned());
    }
    query.fetch_all(pool).await
}

/// The hourly and daily rollups (per SIM, then the fleet's) summed from the usage rows, in one
/// statement each, into empty rollup tables (a rebuild's scratch tables; plain Postgres, where
/// the rollups are tables). Buckets are cut in UTC from the epoch, as the live projector and
/// TimescaleDB's `time_bucket` cut them.
pub async fn sum_rollups(conn: &mut PgConnection) -> Result<(), sqlx::Error> {
    for (table, width) in [("usage_hourly", "1 hour"), ("usage_daily", "1 day")] {
        let bucket = format!("date_bin('{width}', observed_at, TIMESTAMPTZ '1970-01-01 00:00:00+00')");
        sqlx::query(&format!(
            "INSERT INTO sim_{table} (iccid, bucket, data_bytes, sms_mo, sms_mt) \
             SELECT iccid, {bucket}, sum(data_bytes), sum(sms_mo), sum(sms_mt) FROM sim_usage GROUP BY 1, 2"
        ))
        .execute(&mut *conn)
        .await?;
        sqlx::query(&format!(
            "INSERT INTO fleet_{table} (bucket, data_bytes, sms_mo, sms_mt) \
             SELECT bucket, sum(data_bytes), sum(sms_mo), sum(sms_mt) FROM sim_{table} GROUP BY 1"
        ))
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}
