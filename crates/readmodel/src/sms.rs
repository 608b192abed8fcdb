//! The `sms_messages` read model: a row per message (`MT`: requested → submitted → delivered /
//! failed; `MO`: received). Written by the projectors ([`upsert_sms`]), listed by the query API
//! (with [`SMS_COLUMNS`]).

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use domain::{Direction, SmsStatus};
use serde::{Deserialize, Serialize};
use sqlx::{PgConnection, PgPool, Postgres, QueryBuilder};
use uuid::Uuid;

use crate::bulk::{bind_columns, load_keyed, replace_on_conflict};

/// The `sms_messages` columns in [`SmsRow`]'s order.
pub const SMS_COLUMNS: &str =
    "message_id, iccid, direction, status, payload, encoding, parts, source_address, \
     provider_message_id, failure_reason, requested_at, submitted_at, delivered_at, failed_at, received_at, \
     version, last_position, updated_at";

/// An `sms_messages` row: one per message, what `GET /sims/{iccid}/sms` lists.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, sqlx::FromRow)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SmsRow {
    pub message_id: Uuid,
    pub iccid: String,
    /// `MT` or `MO`.
    #[sqlx(try_from = "String")]
    #[cfg_attr(feature = "openapi", schema(value_type = String, example = "MT"))]
    pub direction: Direction,
    /// `requested`, `submitted`, `delivered`, `failed`, `received` or `unknown` (the provider
    /// may or may not have taken it: an operator has to look).
    #[sqlx(try_from = "String")]
    #[cfg_attr(feature = "openapi", schema(value_type = String, example = "delivered"))]
    pub status: SmsStatus,
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

/// These messages' rows, by id, on the caller's connection (a projector's batch).
pub async fn load_sms(conn: &mut PgConnection, ids: &[Uuid]) -> Result<HashMap<Uuid, SmsRow>, sqlx::Error> {
    load_keyed(
        conn,
        SMS_COLUMNS,
        "sms_messages",
        "message_id",
        ids,
        |row: &SmsRow| row.message_id,
    )
    .await
}

/// Writes these rows as they are (inserted or replaced whole).
pub async fn upsert_sms(conn: &mut PgConnection, rows: &[&SmsRow]) -> Result<(), sqlx::Error> {
    if rows.is_empty() {
        return Ok(());
    }
    let sql = format!(
        "INSERT INTO sms_messages ({SMS_COLUMNS}) \
         SELECT * FROM UNNEST($1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::int4[], \
           $8::text[], $9::text[], $10::text[], $11::timestamptz[], $12::timestamptz[], $13::timestamptz[], \
           $14::timestamptz[], $15::timestamptz[], $16::int8[], $17::int8[], $18::timestamptz[]) {}",
        replace_on_conflict("message_id", SMS_COLUMNS, &[])
    );
    let query = bind_columns!(sqlx::query(&sql), rows; message_id, iccid)
        .bind(rows.iter().map(|r| r.direction.as_str()).collect::<Vec<_>>())
        .bind(rows.iter().map(|r| r.status.as_str()).collect::<Vec<_>>());
    bind_columns!(query, rows;
        payload, encoding, parts, source_address, provider_message_id, failure_reason, requested_at,
        submitted_at, delivered_at, failed_at, received_at, version, last_position, updated_at)
    .execute(conn)
    .await?;
    Ok(())
}

/// Which messages of a SIM a page lists.
#[derive(Debug, Clone)]
pub struct SmsFilter {
    pub iccid: String,
    pub direction: Option<Direction>,
    pub status: Option<SmsStatus>,
}

impl SmsFilter {
    /// `FROM sms_messages WHERE …`: the rows this filter selects, for a count of them.
    pub fn push_from_where(&self, query: &mut QueryBuilder<'_, Postgres>) {
        query
            .push("FROM sms_messages WHERE iccid = ")
            .push_bind(self.iccid.clone());
        if let Some(direction) = self.direction {
            query.push(" AND direction = ").push_bind(direction.as_str());
        }
        if let Some(status) = self.status {
            query.push(" AND status = ").push_bind(status.as_str());
        }
    }

    /// One page of the messages, newest first (by request or reception time).
    pub async fn page(&self, pool: &PgPool, limit: i64, offset: i64) -> Result<Vec<SmsRow>, sqlx::Error> {
        let mut select = QueryBuilder::new(format!("SELECT {SMS_COLUMNS} "));
        self.push_from_where(&mut select);
        select
            .push(" ORDER BY coalesce(requested_at, received_at, updated_at) DESC, message_id DESC LIMIT ")
            .push_bind(limit)
            .push(" OFFSET ")
            .push_bind(offset);
        select.build_query_as().fetch_all(pool).await
    }
}
