//! The read-model rows a batch folds events into: loaded in bulk by key, written back in bulk
//! (`UNNEST` of one array per column, so each statement's text is the same whatever the batch
//! size). Array columns (`tags`, `thresholds_crossed`) travel as JSON arrays: Postgres arrays of
//! arrays must be rectangular.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use readmodel::{SimView, SIM_COLUMNS};
use serde_json::Value;
use sqlx::PgConnection;
use uuid::Uuid;

/// A `sims` row: what `GET /sims/{iccid}` answers.
pub type SimRow = SimView;

/// A `sim_quotas` row.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct QuotaRow {
    pub iccid: String,
    pub kind: String,
    pub total: i64,
    pub remaining: i64,
    pub expiry_date: Option<DateTime<Utc>>,
    pub period: i32,
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

/// An `sms_messages` row.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct SmsRow {
    pub message_id: Uuid,
    pub iccid: String,
    pub direction: String,
    pub status: String,
    pub payload: String,
    pub encoding: Option<String>,
    pub parts: Option<i32>,
    pub source_address: Option<String>,
    pub provider_message_id: Option<String>,
    pub failure_reason: Option<String>,
    pub requested_at: Option<DateTime<Utc>>,
    pub submitted_at: Option<DateTime<Utc>>,
    pub delivered_at: Option<DateTime<Utc>>,
    pub failed_at: Option<DateTime<Utc>>,
    pub received_at: Option<DateTime<Utc>>,
    pub version: i64,
    pub last_position: i64,
    pub updated_at: DateTime<Utc>,
}

/// A `sim_status_history` row.
#[derive(Debug, Clone, PartialEq)]
pub struct StatusChange {
    pub iccid: String,
    pub position: i64,
    pub changed_at: DateTime<Utc>,
    pub from_status: Option<String>,
    pub to_status: String,
    pub event_type: String,
    pub actor: Option<String>,
}

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

pub async fn load_sims(
    conn: &mut PgConnection,
    iccids: &[String],
) -> Result<HashMap<String, SimRow>, sqlx::Error> {
    if iccids.is_empty() {
        return Ok(HashMap::new());
    }
    let rows: Vec<SimRow> = sqlx::query_as(&format!("SELECT {SIM_COLUMNS} FROM sims WHERE iccid = ANY($1)"))
        .bind(iccids)
        .fetch_all(conn)
        .await?;
    Ok(rows.into_iter().map(|row| (row.iccid.clone(), row)).collect())
}

/// Every quota of these SIMs, by (iccid, kind).
pub async fn load_quotas(
    conn: &mut PgConnection,
    iccids: &[String],
) -> Result<HashMap<(String, String), QuotaRow>, sqlx::Error> {
    if iccids.is_empty() {
        return Ok(HashMap::new());
    }
    let rows: Vec<QuotaRow> = sqlx::query_as(
        "SELECT iccid, kind, total, remaining, expiry_date, period, thresholds_crossed, exhausted, expired, \
         pending_topup_id, pending_topup_volume, last_topup_at, last_topup_status, version, last_position, \
         updated_at FROM sim_quotas WHERE iccid = ANY($1)",
    )
    .bind(iccids)
    .fetch_all(conn)
    .await?;
    Ok(rows
        .into_iter()
        .map(|row| ((row.iccid.clone(), row.kind.clone()), row))
        .collect())
}

pub async fn load_sms(conn: &mut PgConnection, ids: &[Uuid]) -> Result<HashMap<Uuid, SmsRow>, sqlx::Error> {
    if ids.is_empty() {
        return Ok(HashMap::new());
    }
    let rows: Vec<SmsRow> = sqlx::query_as(
        "SELECT message_id, iccid, direction, status, payload, encoding, parts, source_address, \
         provider_message_id, failure_reason, requested_at, submitted_at, delivered_at, failed_at, received_at, \
         version, last_position, updated_at FROM sms_messages WHERE message_id = ANY($1)",
    )
    .bind(ids)
    .fetch_all(conn)
    .await?;
    Ok(rows.into_iter().map(|row| (row.message_id, row)).collect())
}

fn json_array<T: serde::Serialize>(items: &[T]) -> Value {
    serde_json::to_value(items).unwrap_or(Value::Array(Vec::new()))
}

/// Writes these rows as they are (inserted or replaced whole).
pub async fn upsert_sims(conn: &mut PgConnection, rows: &[&SimRow]) -> Result<(), sqlx::Error> {
    if rows.is_empty() {
        return Ok(());
    }
    macro_rules! column {
        ($field:ident) => {
            rows.iter().map(|r| r.$field.clone()).collect::<Vec<_>>()
        };
    }
    let tags: Vec<Value> = rows.iter().map(|r| json_array(&r.tags)).collect();
    sqlx::query(
        "INSERT INTO sims (iccid, imsi, msisdn, label, tags, status, pending_change, provider_status, imei, \
           imei_lock, ip_address, network, country, rat, last_seen_at, data_total, data_remaining, data_expiry, \
           sms_total, sms_remaining, sms_expiry, registered_at, terminated_at, version, last_position, updated_at, \
           projection) \
         SELECT u.iccid, u.imsi, u.msisdn, u.label, ARRAY(SELECT jsonb_array_elements_text(u.tags)), u.status, \
           u.pending_change, u.provider_status, u.imei, u.imei_lock, u.ip_address, u.network, u.country, u.rat, \
           u.last_seen_at, u.data_total, u.data_remaining, u.data_expiry, u.sms_total, u.sms_remaining, \
           u.sms_expiry, u.registered_at, u.terminated_at, u.version, u.last_position, u.updated_at, u.projection \
         FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[], $5::jsonb[], $6::text[], $7::text[], \
           $8::text[], $9::text[], $10::bool[], $11::text[], $12::text[], $13::text[], $14::text[], \
           $15::timestamptz[], $16::int8[], $17::int8[], $18::timestamptz[], $19::int8[], $20::int8[], \
           $21::timestamptz[], $22::timestamptz[], $23::timestamptz[], $24::int8[], $25::int8[], \
           $26::timestamptz[], $27::text[]) \
           AS u(iccid, imsi, msisdn, label, tags, status, pending_change, provider_status, imei, imei_lock, \
             ip_address, network, country, rat, last_seen_at, data_total, data_remaining, data_expiry, sms_total, \
             sms_remaining, sms_expiry, registered_at, terminated_at, version, last_position, updated_at, projection) \
         ON CONFLICT (iccid) DO UPDATE SET imsi = EXCLUDED.imsi, msisdn = EXCLUDED.msisdn, label = EXCLUDED.label, \
           tags = EXCLUDED.tags, status = EXCLUDED.status, pending_change = EXCLUDED.pending_change, \
           provider_status = EXCLUDED.provider_status, imei = EXCLUDED.imei, imei_lock = EXCLUDED.imei_lock, \
           ip_address = EXCLUDED.ip_address, network = EXCLUDED.network, country = EXCLUDED.country, \
           rat = EXCLUDED.rat, last_seen_at = EXCLUDED.last_seen_at, data_total = EXCLUDED.data_total, \
           data_remaining = EXCLUDED.data_remaining, data_expiry = EXCLUDED.data_expiry, \
           sms_total = EXCLUDED.sms_total, sms_remaining = EXCLUDED.sms_remaining, \
           sms_expiry = EXCLUDED.sms_expiry, registered_at = EXCLUDED.registered_at, \
           terminated_at = EXCLUDED.terminated_at, version = EXCLUDED.version, \
           last_position = EXCLUDED.last_position, updated_at = EXCLUDED.updated_at",
    )
    .bind(column!(iccid))
    .bind(column!(imsi))
    .bind(column!(msisdn))
    .bind(column!(label))
    .bind(tags)
    .bind(column!(status))
    .bind(column!(pending_change))
    .bind(column!(provider_status))
    .bind(column!(imei))
    .bind(column!(imei_lock))
    .bind(column!(ip_address))
    .bind(column!(network))
    .bind(column!(country))
    .bind(column!(rat))
    .bind(column!(last_seen_at))
    .bind(column!(data_total))
    .bind(column!(data_remaining))
    .bind(column!(data_expiry))
    .bind(column!(sms_total))
    .bind(column!(sms_remaining))
    .bind(column!(sms_expiry))
    .bind(column!(registered_at))
    .bind(column!(terminated_at))
    .bind(column!(version))
    .bind(column!(last_position))
    .bind(column!(updated_at))
    .bind(column!(projection))
    .execute(conn)
    .await?;
    Ok(())
}

pub async fn upsert_quotas(conn: &mut PgConnection, rows: &[&QuotaRow]) -> Result<(), sqlx::Error> {
    if rows.is_empty() {
        return Ok(());
    }
    macro_rules! column {
        ($field:ident) => {
            rows.iter().map(|r| r.$field.clone()).collect::<Vec<_>>()
        };
    }
    let thresholds: Vec<Value> = rows.iter().map(|r| json_array(&r.thresholds_crossed)).collect();
    sqlx::query(
        "INSERT INTO sim_quotas (iccid, kind, total, remaining, expiry_date, period, thresholds_crossed, exhausted, \
           expired, pending_topup_id, pending_topup_volume, last_topup_at, last_topup_status, version, \
           last_position, updated_at) \
         SELECT u.iccid, u.kind, u.total, u.remaining, u.expiry_date, u.period, \
           ARRAY(SELECT jsonb_array_elements_text(u.thresholds)::integer), u.exhausted, u.expired, \
           u.pending_topup_id, u.pending_topup_volume, u.last_topup_at, u.last_topup_status, u.version, \
           u.last_position, u.updated_at \
         FROM UNNEST($1::text[], $2::text[], $3::int8[], $4::int8[], $5::timestamptz[], $6::int4[], $7::jsonb[], \
           $8::bool[], $9::bool[], $10::uuid[], $11::int8[], $12::timestamptz[], $13::text[], $14::int8[], \
           $15::int8[], $16::timestamptz[]) \
           AS u(iccid, kind, total, remaining, expiry_date, period, thresholds, exhausted, expired, \
             pending_topup_id, pending_topup_volume, last_topup_at, last_topup_status, version, last_position, \
             updated_at) \
         ON CONFLICT (iccid, kind) DO UPDATE SET total = EXCLUDED.total, remaining = EXCLUDED.remaining, \
           expiry_date = EXCLUDED.expiry_date, period = EXCLUDED.period, \
           thresholds_crossed = EXCLUDED.thresholds_crossed, exhausted = EXCLUDED.exhausted, \
           expired = EXCLUDED.expired, pending_topup_id = EXCLUDED.pending_topup_id, \
           pending_topup_volume = EXCLUDED.pending_topup_volume, last_topup_at = EXCLUDED.last_topup_at, \
           last_topup_status = EXCLUDED.last_topup_status, version = EXCLUDED.version, \
           last_position = EXCLUDED.last_position, updated_at = EXCLUDED.updated_at",
    )
    .bind(column!(iccid))
    .bind(column!(kind))
    .bind(column!(total))
    .bind(column!(remaining))
    .bind(column!(expiry_date))
    .bind(column!(period))
    .bind(thresholds)
    .bind(column!(exhausted))
    .bind(column!(expired))
    .bind(column!(pending_topup_id))
    .bind(column!(pending_topup_volume))
    .bind(column!(last_topup_at))
    .bind(column!(last_topup_status))
    .bind(column!(version))
    .bind(column!(last_position))
    .bind(column!(updated_at))
    .execute(conn)
    .await?;
    Ok(())
}

pub async fn upsert_sms(conn: &mut PgConnection, rows: &[&SmsRow]) -> Result<(), sqlx::Error> {
    if rows.is_empty() {
        return Ok(());
    }
    macro_rules! column {
        ($field:ident) => {
            rows.iter().map(|r| r.$field.clone()).collect::<Vec<_>>()
        };
    }
    sqlx::query(
        "INSERT INTO sms_messages (message_id, iccid, direction, status, payload, encoding, parts, source_address, \
           provider_message_id, failure_reason, requested_at, submitted_at, delivered_at, failed_at, received_at, \
           version, last_position, updated_at) \
         SELECT * FROM UNNEST($1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::int4[], \
           $8::text[], $9::text[], $10::text[], $11::timestamptz[], $12::timestamptz[], $13::timestamptz[], \
           $14::timestamptz[], $15::timestamptz[], $16::int8[], $17::int8[], $18::timestamptz[]) \
         ON CONFLICT (message_id) DO UPDATE SET iccid = EXCLUDED.iccid, direction = EXCLUDED.direction, \
           status = EXCLUDED.status, payload = EXCLUDED.payload, encoding = EXCLUDED.encoding, \
           parts = EXCLUDED.parts, source_address = EXCLUDED.source_address, \
           provider_message_id = EXCLUDED.provider_message_id, failure_reason = EXCLUDED.failure_reason, \
           requested_at = EXCLUDED.requested_at, submitted_at = EXCLUDED.submitted_at, \
           delivered_at = EXCLUDED.delivered_at, failed_at = EXCLUDED.failed_at, \
           received_at = EXCLUDED.received_at, version = EXCLUDED.version, \
           last_position = EXCLUDED.last_position, updated_at = EXCLUDED.updated_at",
    )
    .bind(column!(message_id))
    .bind(column!(iccid))
    .bind(column!(direction))
    .bind(column!(status))
    .bind(column!(payload))
    .bind(column!(encoding))
    .bind(column!(parts))
    .bind(column!(source_address))
    .bind(column!(provider_message_id))
    .bind(column!(failure_reason))
    .bind(column!(requested_at))
    .bind(column!(submitted_at))
    .bind(column!(delivered_at))
    .bind(column!(failed_at))
    .bind(column!(received_at))
    .bind(column!(version))
    .bind(column!(last_position))
    .bind(column!(updated_at))
    .execute(conn)
    .await?;
    Ok(())
}

pub async fn insert_status_history(
    conn: &mut PgConnection,
    rows: &[StatusChange],
) -> Result<(), sqlx::Error> {
    if rows.is_empty() {
        return Ok(());
    }
    macro_rules! column {
        ($field:ident) => {
            rows.iter().map(|r| r.$field.clone()).collect::<Vec<_>>()
        };
    }
    sqlx::query(
        "INSERT INTO sim_status_history (iccid, position, changed_at, from_status, to_status, event_type, actor) \
         SELECT * FROM UNNEST($1::text[], $2::int8[], $3::timestamptz[], $4::text[], $5::text[], $6::text[], \
           $7::text[]) ON CONFLICT (iccid, position) DO NOTHING",
    )
    .bind(column!(iccid))
    .bind(column!(position))
    .bind(column!(changed_at))
    .bind(column!(from_status))
    .bind(column!(to_status))
    .bind(column!(event_type))
    .bind(column!(actor))
    .execute(conn)
    .await?;
    Ok(())
}

/// Inserts the usage rows and returns the positions of those that were new (a replayed
/// report adds nothing twice).
pub async fn insert_usage(conn: &mut PgConnection, rows: &[UsageRow]) -> Result<Vec<i64>, sqlx::Error> {
    if rows.is_empty() {
        return Ok(Vec::new());
    }
    macro_rules! column {
        ($field:ident) => {
            rows.iter().map(|r| r.$field.clone()).collect::<Vec<_>>()
        };
    }
    sqlx::query_scalar(
        "INSERT INTO sim_usage (iccid, observed_at, position, data_bytes, sms_mo, sms_mt) \
         SELECT * FROM UNNEST($1::text[], $2::timestamptz[], $3::int8[], $4::int8[], $5::int8[], $6::int8[]) \
         ON CONFLICT DO NOTHING RETURNING position",
    )
    .bind(column!(iccid))
    .bind(column!(observed_at))
    .bind(column!(position))
    .bind(column!(data_bytes))
    .bind(column!(sms_mo))
    .bind(column!(sms_mt))
    .fetch_all(conn)
    .await
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
