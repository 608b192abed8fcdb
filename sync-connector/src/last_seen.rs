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
);

const COLUMNS: &str =
    "iccid, shard, list_entry, connectivity, data_quota, sms_quota, usage_days, last_mo_sms_id, \
                       detail_due, detail_synced_at, events_cursor";

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
    }
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

    /// Stores a new list entry; `detail_due` asks for per-SIM calls before the round-robin.
    pub async fn save_list_entry(
        &self,
        iccid: &str,
        entry: &ListEntry,
        detail_due: bool,
    ) -> Result<(), sqlx::Error> {
        sqlx::query(
            "INSERT INTO sync_sims (iccid, shard, list_entry, detail_due) VALUES ($1, $4, $2, $3) \
             ON CONFLICT (iccid) DO UPDATE SET list_entry = EXCLUDED.list_entry, shard = EXCLUDED.shard, \
             detail_due = sync_sims.detail_due OR EXCLUDED.detail_due, list_seen_at = now()",
        )
        .bind(iccid)
        .bind(Json(entry))
        .bind(detail_due)
        .bind(&self.shard)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Stores what a per-SIM refresh saw and marks the SIM fresh.
    pub async fn save_detail(&self, sim: &SyncedSim) -> Result<(), sqlx::Error> {
        sqlx::query(
            "UPDATE sync_sims SET connectivity = $2, data_quota = $3, sms_quota = $4, usage_days = $5, \
             last_mo_sms_id = GREATEST(last_mo_sms_id, $6), detail_due = false, detail_synced_at = now(), \
             events_cursor = GREATEST(events_cursor, $7) WHERE iccid = $1",
        )
        .bind(&sim.iccid)
        .bind(sim.connectivity.as_ref().map(Json))
        .bind(sim.data_quota.as_ref().map(Json))
        .bind(sim.sms_quota.as_ref().map(Json))
        .bind(Json(&sim.usage_days))
        .bind(sim.last_mo_sms_id)
        .bind(sim.events_cursor)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Puts a SIM at the back of the round-robin without changing what was seen of it.
    pub async fn mark_refreshed(&self, iccid: &str) -> Result<(), sqlx::Error> {
        sqlx::query("UPDATE sync_sims SET detail_due = false, detail_synced_at = now() WHERE iccid = $1")
            .bind(iccid)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Asks for a per-SIM refresh before the round-robin (a streamer record says the quotas
    /// changed); a SIM the connector has not listed yet gets it when it is listed.
    pub async fn mark_detail_due(&self, iccid: &str) -> Result<(), sqlx::Error> {
        sqlx::query("UPDATE sync_sims SET detail_due = true WHERE iccid = $1")
            .bind(iccid)
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

    /// SIMs whose list entry changed, oldest refresh first.
    pub async fn detail_due(&self, limit: i64) -> Result<Vec<String>, sqlx::Error> {
        sqlx::query_scalar(
            "SELECT iccid FROM sync_sims WHERE shard = $2 AND detail_due \
             ORDER BY detail_synced_at NULLS FIRST, iccid LIMIT $1",
        )
        .bind(limit)
        .bind(&self.shard)
        .fetch_all(&self.pool)
        .await
    }

    /// The round-robin: SIMs not refreshed since `before`, least recently refreshed first.
    pub async fn stale(&self, before: DateTime<Utc>, limit: i64) -> Result<Vec<String>, sqlx::Error> {
        sqlx::query_scalar(
            "SELECT iccid FROM sync_sims WHERE shard = $3 AND (detail_synced_at IS NULL OR detail_synced_at < $1) \
             ORDER BY detail_synced_at NULLS FIRST, iccid LIMIT $2",
        )
        .bind(before)
        .bind(limit)
        .bind(&self.shard)
        .fetch_all(&self.pool)
        .await
    }

    pub async fn all_iccids(&self) -> Result<Vec<String>, sqlx::Error> {
        sqlx::query_scalar("SELECT iccid FROM sync_sims WHERE shard = $1 ORDER BY iccid")
            .bind(&self.shard)
            .fetch_all(&self.pool)
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
