//! `sync_sims`: what the connector last saw of each SIM at the provider.
//!
//! It is written after the commands derived from a difference were stored, so a crash in
//! between makes the next sweep see the difference again; the commands it then issues change
//! nothing (the aggregates already hold the new values) and their deterministic keys dedupe a
//! concurrent repeat.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use sqlx::types::Json;
use sqlx::PgPool;

use crate::config::Shard;
use crate::observe::{ConnectivityView, ListEntry, SeenQuota, UsageDays};
use crate::poll::Parts;

#[derive(Debug, Clone, Default, PartialEq)]
pub struct SyncedSim {
    pub iccid: String,
    pub shard: String,
    pub list_entry: ListEntry,
    pub connectivity: Option<ConnectivityView>,
    pub data_quota: Option<SeenQuota>,
    pub sms_quota: Option<SeenQuota>,
    pub usage_days: UsageDays,
    pub last_mo_sms_id: i64,
    /// The newest provider event timestamp stored in the inbox (`poll::events`).
    pub events_cursor: Option<DateTime<Utc>>,
    pub detail_due: bool,
    pub detail_synced_at: Option<DateTime<Utc>>,
    /// The parts of the per-SIM refresh that are due (empty while `detail_due`: all).
    pub due_parts: Parts,
    /// When the daily full refresh (the safety net) is due.
    pub full_due_at: Option<DateTime<Utc>>,
    /// Up to when the SIM's usage is known to be complete.
    pub usage_as_of: Option<DateTime<Utc>>,
}

type Row = (
    String,
    String,
    Json<ListEntry>,
    Option<Json<ConnectivityView>>,
    Option<Json<SeenQuota>>,
    Option<Json<SeenQuota>>,
    Json<UsageDays>,
    i64,
    bool,
    Option<DateTime<Utc>>,
    Option<DateTime<Utc>>,
    i32,
    Option<DateTime<Utc>>,
    Option<DateTime<Utc>>,
);

const COLUMNS: &str =
    "iccid, shard, list_entry, connectivity, data_quota, sms_quota, usage_days, last_mo_sms_id, \
                       detail_due, detail_synced_at, events_cursor, due_parts, full_due_at, usage_as_of";

fn from_row(row: Row) -> SyncedSim {
    SyncedSim {
        iccid: row.0,
        shard: row.1,
        list_entry: row.2 .0,
        connectivity: row.3.map(|j| j.0),
        data_quota: row.4.map(|j| j.0),
        sms_quota: row.5.map(|j| j.0),
        usage_days: row.6 .0,
        last_mo_sms_id: row.7,
        detail_due: row.8,
        detail_synced_at: row.9,
        events_cursor: row.10,
        due_parts: Parts(row.11),
        full_due_at: row.12,
        usage_as_of: row.13,
    }
}

/// A disabled SIM whose usage is complete: a usage call made after the end of the day it was
/// first seen disabled has read that day as closed, and it can have no traffic since. The
/// usage round leaves it out, and its usage does not count as getting old.
macro_rules! usage_settled {
    () => {
        "(disabled_seen_at IS NOT NULL AND usage_as_of IS NOT NULL \
          AND usage_as_of >= date_trunc('day', disabled_seen_at, 'UTC') + interval '1 day')"
    };
}

/// What the connector last saw of one shard's SIMs at the provider (`sync_sims`): what a
/// poll is compared with. Not aggregate snapshots (those are the event store's).
#[derive(Clone)]
pub struct LastSeen {
    pool: PgPool,
    shard: String,
}

impl LastSeen {
    pub fn new(pool: PgPool, shard: Shard) -> Self {
        Self {
            pool,
            shard: format!("{}/{}", shard.index, shard.count),
        }
    }

    /// This shard's label, as stored in `sync_sims.shard`.
    pub fn shard(&self) -> &str {
        &self.shard
    }

    pub async fn get(&self, iccid: &str) -> Result<Option<SyncedSim>, sqlx::Error> {
        let row: Option<Row> = sqlx::query_as(&format!("SELECT {COLUMNS} FROM sync_sims WHERE iccid = $1"))
            .bind(iccid)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.map(from_row))
    }

    /// What was last seen of a page of SIMs, by ICCID.
    pub async fn many(&self, iccids: &[String]) -> Result<HashMap<String, SyncedSim>, sqlx::Error> {
        let rows: Vec<Row> =
            sqlx::query_as(&format!("SELECT {COLUMNS} FROM sync_sims WHERE iccid = ANY($1)"))
                .bind(iccids)
                .fetch_all(&self.pool)
                .await?;
        Ok(rows
            .into_iter()
            .map(from_row)
            .map(|sim| (sim.iccid.clone(), sim))
            .collect())
    }

    /// Stores a new list entry; `due` are the parts it makes due (added to those already due),
    /// `full_due_at` the first full refresh of a SIM new to the connector (kept when known).
    pub async fn save_list_entry(
        &self,
        iccid: &str,
        entry: &ListEntry,
        due: Parts,
        full_due_at: Option<DateTime<Utc>>,
    ) -> Result<(), sqlx::Error> {
        sqlx::query(
            "INSERT INTO sync_sims (iccid, shard, list_entry, detail_due, due_parts, full_due_at, disabled_seen_at) \
             VALUES ($1, $4, $2, $3 <> 0, $3, $5, CASE WHEN $2->>'status' = 'Disabled' THEN now() END) \
             ON CONFLICT (iccid) DO UPDATE SET list_entry = EXCLUDED.list_entry, shard = EXCLUDED.shard, \
             due_parts = sync_sims.due_parts | EXCLUDED.due_parts, \
             detail_due = sync_sims.detail_due OR EXCLUDED.detail_due, \
             full_due_at = COALESCE(sync_sims.full_due_at, EXCLUDED.full_due_at), list_seen_at = now(), \
             disabled_seen_at = CASE WHEN EXCLUDED.disabled_seen_at IS NULL THEN NULL \
                                     ELSE COALESCE(sync_sims.disabled_seen_at, EXCLUDED.disabled_seen_at) END",
        )
        .bind(iccid)
        .bind(Json(entry))
        .bind(due.0)
        .bind(&self.shard)
        .bind(full_due_at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Stores what a per-SIM refresh of `done` saw: those parts are no longer due (others
    /// stay), a full refresh (`next_full`) sets when the next one is due, and a refresh that
    /// read usage started at `usage_at` makes the SIM's usage complete up to then and sets its
    /// next usage-round call (`next_usage`).
    pub async fn save_detail(
        &self,
        sim: &SyncedSim,
        done: Parts,
        next_full: Option<DateTime<Utc>>,
        usage_at: Option<DateTime<Utc>>,
        next_usage: Option<DateTime<Utc>>,
    ) -> Result<(), sqlx::Error> {
        sqlx::query(
            "UPDATE sync_sims SET connectivity = $2, data_quota = $3, sms_quota = $4, usage_days = $5, \
             last_mo_sms_id = GREATEST(last_mo_sms_id, $6), due_parts = due_parts & ~$8, \
             detail_due = (due_parts & ~$8) <> 0, detail_synced_at = now(), \
             events_cursor = GREATEST(events_cursor, $7), full_due_at = COALESCE($9, full_due_at), \
             usage_as_of = GREATEST(usage_as_of, $10), usage_due_at = COALESCE($11, usage_due_at) \
             WHERE iccid = $1",
        )
        .bind(&sim.iccid)
        .bind(sim.connectivity.as_ref().map(Json))
        .bind(sim.data_quota.as_ref().map(Json))
        .bind(sim.sms_quota.as_ref().map(Json))
        .bind(Json(&sim.usage_days))
        .bind(sim.last_mo_sms_id)
        .bind(sim.events_cursor)
        .bind(done.0)
        .bind(next_full)
        .bind(usage_at)
        .bind(next_usage)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Puts a SIM at the back of the queue without changing what was seen of it: nothing due,
    /// its full refresh an interval (`next_full`) away.
    pub async fn mark_refreshed(&self, iccid: &str, next_full: DateTime<Utc>) -> Result<(), sqlx::Error> {
        sqlx::query(
            "UPDATE sync_sims SET detail_due = false, due_parts = 0, detail_synced_at = now(), \
             full_due_at = GREATEST(full_due_at, $2) WHERE iccid = $1",
        )
        .bind(iccid)
        .bind(next_full)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Makes `parts` of a SIM due (a streamer record says they changed); a SIM the connector
    /// has not listed yet gets its first refresh when it is listed.
    pub async fn mark_parts_due(&self, iccid: &str, parts: Parts) -> Result<(), sqlx::Error> {
        sqlx::query("UPDATE sync_sims SET detail_due = true, due_parts = due_parts | $2 WHERE iccid = $1")
            .bind(iccid)
            .bind(parts.or_all().0)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// The connectivity part alone (an IP change seen in the list).
    pub async fn save_connectivity(&self, iccid: &str, view: &ConnectivityView) -> Result<(), sqlx::Error> {
        sqlx::query("UPDATE sync_sims SET connectivity = $2 WHERE iccid = $1")
            .bind(iccid)
            .bind(Json(view))
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// SIMs with parts due, oldest refresh first, with their parts (empty: all).
    pub async fn detail_due(&self, limit: i64) -> Result<Vec<(String, Parts)>, sqlx::Error> {
        let rows: Vec<(String, i32)> = sqlx::query_as(
            "SELECT iccid, due_parts FROM sync_sims WHERE shard = $2 AND detail_due \
             ORDER BY detail_synced_at NULLS FIRST, iccid LIMIT $1",
        )
        .bind(limit)
        .bind(&self.shard)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|(iccid, parts)| (iccid, Parts(parts).or_all()))
            .collect())
    }

    /// The usage round: SIMs (with no other part due) whose usage call is due at `now`, the
    /// longest due first. A SIM the list shows disabled is left out once a usage call made
    /// after the end of the day it was first seen disabled has read that day as closed: it can
    /// have no traffic since (the safety net still reads it).
    pub async fn usage_due(&self, now: DateTime<Utc>, limit: i64) -> Result<Vec<String>, sqlx::Error> {
        sqlx::query_scalar(concat!(
            "SELECT iccid FROM sync_sims WHERE shard = $3 AND NOT detail_due \
                 AND (usage_due_at IS NULL OR usage_due_at <= $1) AND NOT ",
            usage_settled!(),
            " ORDER BY usage_due_at NULLS FIRST, iccid LIMIT $2"
        ))
        .bind(now)
        .bind(limit)
        .bind(&self.shard)
        .fetch_all(&self.pool)
        .await
    }

    /// The safety net: SIMs whose full refresh is due at `now` (rows from before due times
    /// existed: last refreshed before `before`), the longest due first.
    pub async fn stale(
        &self,
        now: DateTime<Utc>,
        before: DateTime<Utc>,
        limit: i64,
    ) -> Result<Vec<String>, sqlx::Error> {
        sqlx::query_scalar(
            "SELECT iccid FROM sync_sims WHERE shard = $3 AND (full_due_at <= $4 \
             OR (full_due_at IS NULL AND (detail_synced_at IS NULL OR detail_synced_at < $1))) \
             ORDER BY full_due_at NULLS FIRST, detail_synced_at NULLS FIRST, iccid LIMIT $2",
        )
        .bind(before)
        .bind(limit)
        .bind(&self.shard)
        .bind(now)
        .fetch_all(&self.pool)
        .await
    }

    /// How many registered SIMs have not had their first per-SIM refresh (the first full sync's
    /// remainder; `sync_sims_round_robin` answers it from the index).
    pub async fn never_refreshed(&self) -> Result<i64, sqlx::Error> {
        sqlx::query_scalar("SELECT count(*) FROM sync_sims WHERE shard = $1 AND detail_synced_at IS NULL")
            .bind(&self.shard)
            .fetch_one(&self.pool)
            .await
    }

    pub async fn all_iccids(&self) -> Result<Vec<String>, sqlx::Error> {
        sqlx::query_scalar("SELECT iccid FROM sync_sims WHERE shard = $1 ORDER BY iccid")
            .bind(&self.shard)
            .fetch_all(&self.pool)
            .await
    }

    /// The oldest time up to which a SIM's usage is known complete, if every SIM has one.
    pub async fn oldest_usage(&self) -> Result<Option<DateTime<Utc>>, sqlx::Error> {
        sqlx::query_scalar(concat!(
            "SELECT CASE WHEN bool_or(usage_as_of IS NULL) THEN NULL ELSE min(usage_as_of) END \
                 FROM sync_sims WHERE shard = $1 AND NOT ",
            usage_settled!()
        ))
        .bind(&self.shard)
        .fetch_one(&self.pool)
        .await
    }

    /// The age of the oldest per-SIM refresh (the usage freshness reached), if every SIM had one.
    pub async fn oldest_refresh(&self) -> Result<Option<DateTime<Utc>>, sqlx::Error> {
        sqlx::query_scalar(
            "SELECT CASE WHEN bool_or(detail_synced_at IS NULL) THEN NULL ELSE min(detail_synced_at) END \
             FROM sync_sims WHERE shard = $1",
        )
        .bind(&self.shard)
        .fetch_one(&self.pool)
        .await
    }
}
