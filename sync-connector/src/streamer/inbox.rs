//! `streamer_records` and `streamer_rejects`: the receiver's durable inbox and the applier's
//! claims on it (the connector owns both tables).

use std::collections::BTreeMap;

use chrono::{DateTime, NaiveDate, Utc};
use sqlx::types::Json;
use sqlx::PgPool;

use super::record::{Record, Rejection};
use crate::config::{shard_of_hash, Shard};

/// What storing a batch came to.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stored {
    /// Records new to the inbox, by (stream, type).
    pub new: BTreeMap<(String, String), u64>,
    /// Records already there (a retransmission), by stream.
    pub duplicates: BTreeMap<String, u64>,
}

impl Stored {
    pub fn accepted(&self) -> u64 {
        self.new.values().sum()
    }

    pub fn duplicate_count(&self) -> u64 {
        self.duplicates.values().sum()
    }
}

/// A record the applier claimed.
#[derive(Debug, Clone)]
pub struct Claimed {
    pub seq: i64,
    pub record: Record,
}

/// How the applier settled a record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Settled {
    Applied,
    Skipped(String),
    Pending,
    Refused(String),
}

impl Settled {
    pub fn state(&self) -> &'static str {
        match self {
            Self::Applied => "applied",
            Self::Skipped(_) => "skipped",
            Self::Pending => "pending",
            Self::Refused(_) => "refused",
        }
    }

    fn reason(&self) -> Option<&str> {
        match self {
            Self::Skipped(reason) | Self::Refused(reason) => Some(reason),
            Self::Applied | Self::Pending => None,
        }
    }
}

#[derive(Clone)]
pub struct Inbox {
    pool: PgPool,
    shard: Shard,
}

/// The longest stored copy of a rejected record.
const REJECT_BODY_LIMIT: usize = 8 * 1024;

impl Inbox {
    pub fn new(pool: PgPool, shard: Shard) -> Self {
        Self { pool, shard }
    }

    /// Stores every well-formed record and every rejection of a batch in one transaction;
    /// records already in the inbox are left as they are and counted as duplicates.
    pub async fn store(
        &self,
        records: &[Record],
        rejected: &[(Rejection, &str)],
    ) -> Result<Stored, sqlx::Error> {
        let mut columns = Columns::default();
        for record in records {
            columns.push(record);
        }
        let mut tx = self.pool.begin().await?;
        let new: Vec<(String, String)> = sqlx::query_as(
            "INSERT INTO streamer_records (stream, record_id, kind, iccid, shard_hash, occurred_at, record) \
             SELECT s, r, k, i, h::numeric, o, j::jsonb FROM UNNEST($1::text[], $2::bigint[], $3::text[], \
             $4::text[], $5::text[], $6::timestamptz[], $7::text[]) AS u(s, r, k, i, h, o, j) \
             ON CONFLICT (stream, record_id) DO NOTHING RETURNING stream, kind",
        )
        .bind(&columns.stream)
        .bind(&columns.record_id)
        .bind(&columns.kind)
        .bind(&columns.iccid)
        .bind(&columns.shard_hash)
        .bind(&columns.occurred_at)
        .bind(&columns.record)
        .fetch_all(&mut *tx)
        .await?;
        if !rejected.is_empty() {
            let ids: Vec<Option<i64>> = rejected.iter().map(|(r, _)| r.id).collect();
            let reasons: Vec<&str> = rejected.iter().map(|(r, _)| r.reason.as_str()).collect();
            let bodies: Vec<&str> = rejected
                .iter()
                .map(|(_, body)| cut(body, REJECT_BODY_LIMIT))
                .collect();
            sqlx::query(
                "INSERT INTO streamer_rejects (record_id, reason, body) \
                 SELECT * FROM UNNEST($1::bigint[], $2::text[], $3::text[]) \
                 ON CONFLICT (record_id) WHERE record_id IS NOT NULL DO NOTHING",
            )
            .bind(&ids)
            .bind(&reasons)
            .bind(&bodies)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        let mut stored = Stored::default();
        for stream in &columns.stream {
            *stored.duplicates.entry((*stream).to_owned()).or_default() += 1;
        }
        for (stream, kind) in new {
            *stored.duplicates.entry(stream.clone()).or_default() -= 1;
            *stored.new.entry((stream, kind)).or_default() += 1;
        }
        stored.duplicates.retain(|_, n| *n > 0);
        Ok(stored)
    }

    /// Up to `limit` records waiting for this shard's applier, oldest first.
    pub async fn claim(&self, limit: i64) -> Result<Vec<Claimed>, sqlx::Error> {
        let rows: Vec<(i64, Json<Record>)> = sqlx::query_as(
            "SELECT seq, record FROM streamer_records WHERE state = 'received' \
             AND ($2 = 1 OR shard_hash IS NULL AND $3 = 0 OR shard_hash % $2::numeric = $3::numeric) \
             ORDER BY seq LIMIT $1",
        )
        .bind(limit)
        .bind(i64::from(self.shard.count))
        .bind(i64::from(self.shard.index))
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|(seq, record)| Claimed {
                seq,
                record: record.0,
            })
            .collect())
    }

    /// Records how each claimed record was settled, in one statement.
    pub async fn settle(&self, outcomes: &[(i64, Settled)]) -> Result<(), sqlx::Error> {
        let seqs: Vec<i64> = outcomes.iter().map(|(seq, _)| *seq).collect();
        let states: Vec<&str> = outcomes.iter().map(|(_, s)| s.state()).collect();
        let reasons: Vec<Option<&str>> = outcomes.iter().map(|(_, s)| s.reason()).collect();
        sqlx::query(
            "UPDATE streamer_records r SET state = o.state, reason = o.reason, \
             settled_at = CASE WHEN o.state = 'pending' THEN NULL ELSE now() END \
             FROM UNNEST($1::bigint[], $2::text[], $3::text[]) AS o(seq, state, reason) \
             WHERE r.seq = o.seq AND r.state = 'received'",
        )
        .bind(&seqs)
        .bind(&states)
        .bind(&reasons)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Whether a record of `kind` about the SIM that happened after `at` (or at the same time
    /// with a higher id) was applied already: then this one is out of date.
    pub async fn superseded(&self, record: &Record, kind: &str) -> Result<bool, sqlx::Error> {
        sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM streamer_records WHERE iccid = $1 AND kind = $2 \
             AND state = 'applied' AND (occurred_at > $3 OR occurred_at = $3 AND record_id > $4))",
        )
        .bind(&record.iccid)
        .bind(kind)
        .bind(record.occurred_at)
        .bind(record.id)
        .fetch_one(&self.pool)
        .await
    }

    /// The usage of the SIM's records applied so far for `day` (data bytes, SMS MO, SMS MT):
    /// the streamed total the applier compares with the day's total on the SIM.
    pub async fn applied_usage(&self, iccid: &str, day: NaiveDate) -> Result<[u64; 3], sqlx::Error> {
        let (data, mo, mt): (i64, i64, i64) = sqlx::query_as(
            "SELECT COALESCE(sum((record->'meaning'->>'bytes')::bigint), 0)::bigint, \
                    COALESCE(sum((record->'meaning'->>'mo')::bigint), 0)::bigint, \
                    COALESCE(sum((record->'meaning'->>'mt')::bigint), 0)::bigint \
             FROM streamer_records WHERE iccid = $1 AND kind IN ('data', 'sms') \
             AND state = 'applied' AND record->'meaning'->>'day' = $2",
        )
        .bind(iccid)
        .bind(day.to_string())
        .fetch_one(&self.pool)
        .await?;
        Ok([data, mo, mt].map(|n| u64::try_from(n).unwrap_or(0)))
    }

    /// SIMs (of this shard) with records waiting for their registration.
    pub async fn pending_sims(&self, limit: i64) -> Result<Vec<String>, sqlx::Error> {
        sqlx::query_scalar(
            "SELECT DISTINCT iccid FROM streamer_records WHERE state = 'pending' \
             AND ($2 = 1 OR shard_hash % $2::numeric = $3::numeric) ORDER BY iccid LIMIT $1",
        )
        .bind(limit)
        .bind(i64::from(self.shard.count))
        .bind(i64::from(self.shard.index))
        .fetch_all(&self.pool)
        .await
    }

    /// Hands a SIM's pending records back to the applier (its SIM is registered now).
    pub async fn release(&self, iccid: &str) -> Result<u64, sqlx::Error> {
        let done = sqlx::query(
            "UPDATE streamer_records SET state = 'received' WHERE iccid = $1 AND state = 'pending'",
        )
        .bind(iccid)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected())
    }

    /// Deletes settled records and rejects older than `before`, at most `limit` of each;
    /// returns how many went. A record resent after that would be stored again, and its
    /// commands would still find their idempotency keys in the event store.
    pub async fn forget_settled(&self, before: DateTime<Utc>, limit: i64) -> Result<u64, sqlx::Error> {
        let records = sqlx::query(
            "DELETE FROM streamer_records WHERE (stream, record_id) IN (SELECT stream, record_id \
             FROM streamer_records WHERE settled_at < $1 LIMIT $2)",
        )
        .bind(before)
        .bind(limit)
        .execute(&self.pool)
        .await?;
        let rejects = sqlx::query(
            "DELETE FROM streamer_rejects WHERE id IN (SELECT id FROM streamer_rejects WHERE received_at < $1 LIMIT $2)",
        )
        .bind(before)
        .bind(limit)
        .execute(&self.pool)
        .await?;
        Ok(records.rows_affected() + rejects.rows_affected())
    }

    /// Records by state (the applier's backlog, for tests and operators).
    pub async fn counts(&self) -> Result<Vec<(String, i64)>, sqlx::Error> {
        sqlx::query_as("SELECT state, count(*) FROM streamer_records GROUP BY state ORDER BY state")
            .fetch_all(&self.pool)
            .await
    }

    /// The newest record's time per stream, to restore the age metric after a restart.
    pub async fn newest(&self) -> Result<Vec<(String, DateTime<Utc>)>, sqlx::Error> {
        sqlx::query_as("SELECT stream, max(occurred_at) FROM streamer_records GROUP BY stream")
            .fetch_all(&self.pool)
            .await
    }
}

/// A batch as the columns of one `INSERT … SELECT FROM UNNEST`.
#[derive(Default)]
struct Columns {
    stream: Vec<&'static str>,
    record_id: Vec<i64>,
    kind: Vec<&'static str>,
    iccid: Vec<Option<String>>,
    /// As text: a u64 does not fit a bigint, and numeric is cast from it in SQL.
    shard_hash: Vec<Option<String>>,
    occurred_at: Vec<DateTime<Utc>>,
    record: Vec<String>,
}

impl Columns {
    fn push(&mut self, record: &Record) {
        self.stream.push(record.stream.as_str());
        self.record_id.push(record.id);
        self.kind.push(record.meaning.kind());
        self.iccid.push(record.iccid.clone());
        self.shard_hash.push(
            record
                .iccid
                .as_deref()
                .map(|iccid| shard_of_hash(iccid).to_string()),
        );
        self.occurred_at.push(record.occurred_at);
        // Serialising plain data cannot fail.
        self.record
            .push(serde_json::to_string(record).unwrap_or_default());
    }
}

fn cut(text: &str, limit: usize) -> &str {
    if text.len() <= limit {
        return text;
    }
    let mut end = limit;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}
