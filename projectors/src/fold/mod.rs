//! Events folded into read-model rows in memory, then written back in bulk: a batch's SIMs,
//! quotas and messages are loaded once, every event of the batch is applied to them in log
//! order, and each changed row is written once (by `readmodel`'s bulk writes). How each kind
//! of event changes the rows: [`sim`], [`quota`], [`sms_events`]. The rules are those of
//! `readmodel::sim_view_as_of` (the auditors' replay), so that `GET /sims/{iccid}/state?as_of=now`
//! equals `GET /sims/{iccid}`: SIM and quota events move the SIM row's `last_position` /
//! `updated_at` (the event's `recorded_at`, never `now()`) forward only; SMS events do not
//! touch it.

mod fleet;
mod quota;
pub mod replay;
mod sim;
mod sms_events;

use std::collections::{BTreeSet, HashMap};

use chrono::{DateTime, DurationRound, TimeDelta, Utc};
use eventstore::StoredEvent;
use sqlx::PgConnection;
use uuid::Uuid;

use crate::apply::{Decoded, UsageRollups};
use readmodel::{connectivity_history, fleet_history, quotas, sims, sms, status_history, usage};
use readmodel::{
    ConnectivityChange, Figures, FleetChange, QuotaRow, SimView as SimRow, SmsRow, StatusChange, UsageRow,
};

/// Rows per bulk statement (so a rebuild's final write is several statements, not one huge one).
const WRITE_CHUNK: usize = 10_000;

/// The rows one batch works on, and what it changed.
#[derive(Default)]
pub struct Fold {
    pub sims: HashMap<String, SimRow>,
    pub quotas: HashMap<(String, String), QuotaRow>,
    pub sms: HashMap<Uuid, SmsRow>,
    dirty_sims: BTreeSet<String>,
    dirty_quotas: BTreeSet<(String, String)>,
    dirty_sms: BTreeSet<Uuid>,
    history: Vec<StatusChange>,
    connectivity: Vec<ConnectivityChange>,
    usage: Vec<UsageRow>,
    /// What the events did to the fleet summary's figures.
    fleet: Vec<FleetChange>,
}

/// What [`Fold::write`] wrote: the SIMs whose rows or messages changed, and the SIM rows as
/// written (for the cache, without reading them back).
pub struct Written {
    pub touched: BTreeSet<String>,
    pub rows: Vec<SimRow>,
    /// New usage rows went into a TimescaleDB hypertable: wake the continuous aggregates'
    /// refresher after the commit.
    pub late_usage: bool,
}

/// The keys of the rows a batch of decoded events needs.
#[derive(Default)]
pub struct Needs {
    /// SIM rows: SIM events' and quota events' SIMs (a quota updates its SIM's summary).
    pub iccids: BTreeSet<String>,
    pub messages: BTreeSet<Uuid>,
}

impl Needs {
    pub fn add(&mut self, event: &StoredEvent, decoded: &Decoded) {
        match decoded {
            Decoded::Sim(_) => {
                self.iccids.insert(event.aggregate_id.clone());
            }
            Decoded::Quota { iccid, .. } => {
                self.iccids.insert(iccid.clone());
            }
            Decoded::Sms { message_id, .. } => {
                self.messages.insert(*message_id);
            }
            Decoded::Unprojected => {}
        }
    }
}

impl Fold {
    /// Loads the rows `needs` names (quotas by their SIMs: a registration reads both).
    pub async fn load(conn: &mut PgConnection, needs: &Needs) -> Result<Self, sqlx::Error> {
        let iccids: Vec<String> = needs.iccids.iter().cloned().collect();
        let messages: Vec<Uuid> = needs.messages.iter().copied().collect();
        Ok(Self {
            sims: sims::load_sims_by_iccid(conn, &iccids).await?,
            quotas: quotas::load_quotas(conn, &iccids).await?,
            sms: sms::load_sms(conn, &messages).await?,
            ..Self::default()
        })
    }

    /// Applies one decoded event to the rows, and records what it did to the fleet's figures.
    pub fn apply(&mut self, e: &StoredEvent, decoded: Decoded) {
        let touched = fleet::Touched::of(e, &decoded);
        let mut figures = Figures::default();
        self.contribution(&touched, -1, &mut figures);
        match decoded {
            Decoded::Sim(event) => self.sim_event(e, event),
            Decoded::Quota { iccid, kind, event } => self.quota_event(e, &iccid, kind, event),
            Decoded::Sms { message_id, event } => self.sms_event(e, message_id, event),
            Decoded::Unprojected => {
                tracing::debug!(aggregate_type = %e.aggregate_type, "no read model for this aggregate type");
            }
        }
        self.contribution(&touched, 1, &mut figures);
        self.fleet.extend(figures.changes(e.position, e.recorded_at));
    }

    /// Writes every changed row, the status changes and the usage (and, on plain Postgres,
    /// the rollups of the usage rows that were new).
    pub async fn write(
        mut self,
        conn: &mut PgConnection,
        rollups: UsageRollups,
    ) -> Result<Written, sqlx::Error> {
        let touched = self.touched();
        let dirty = self.dirty_sims.clone();
        self.write_rows(conn).await?;
        // After the rows, so a SIM registered in this batch has its row to mark (a rebuild,
        // which writes appends before rows, marks every SIM at its end instead).
        usage::mark_usage_reported(conn, &self.usage).await?;
        let late_usage = self.write_appends(conn, rollups).await?;
        let rows = dirty.iter().filter_map(|k| self.sims.remove(k)).collect();
        Ok(Written {
            touched,
            rows,
            late_usage,
        })
    }

    /// The SIMs whose rows or messages changed since the last write.
    fn touched(&self) -> BTreeSet<String> {
        let mut touched: BTreeSet<String> = self.dirty_sims.clone();
        touched.extend(
            self.dirty_sms
                .iter()
                .filter_map(|id| self.sms.get(id))
                .map(|m| m.iccid.clone()),
        );
        touched
    }

    /// Writes the rows changed since the last call (SIMs, quotas, messages) and forgets that
    /// they changed; the rows stay held.
    pub async fn write_rows(&mut self, conn: &mut PgConnection) -> Result<(), sqlx::Error> {
        let sims: Vec<&SimRow> = self.dirty_sims.iter().filter_map(|k| self.sims.get(k)).collect();
        for chunk in sims.chunks(WRITE_CHUNK) {
            sims::upsert_sims(conn, chunk).await?;
        }
        let quotas: Vec<&QuotaRow> = self
            .dirty_quotas
            .iter()
            .filter_map(|k| self.quotas.get(k))
            .collect();
        for chunk in quotas.chunks(WRITE_CHUNK) {
            quotas::upsert_quotas(conn, chunk).await?;
        }
        let sms: Vec<&SmsRow> = self.dirty_sms.iter().filter_map(|k| self.sms.get(k)).collect();
        for chunk in sms.chunks(WRITE_CHUNK) {
            sms::upsert_sms(conn, chunk).await?;
        }
        self.dirty_sims.clear();
        self.dirty_quotas.clear();
        self.dirty_sms.clear();
        Ok(())
    }

    /// Writes the status changes, the fleet's changes (with their hours) and usage rows
    /// gathered since the last call, and the rollups
    /// of the usage rows that were new: on plain Postgres (`Tables`) added to the rollup tables
    /// (a rebuild passes `None` and sums its rollups in one statement at the end instead); with
    /// TimescaleDB (`Managed`) the days of new rows that may lie below a continuous aggregate's
    /// horizon are registered for a refresh after the commit. Returns whether any new row was
    /// (the caller then wakes a [`crate::rollup_refresh::Refresher`]).
    pub async fn write_appends(
        &mut self,
        conn: &mut PgConnection,
        rollups: impl Into<Option<UsageRollups>>,
    ) -> Result<bool, sqlx::Error> {
        let rollups = rollups.into();
        let add_rollups = rollups == Some(UsageRollups::Tables);
        let history = std::mem::take(&mut self.history);
        for chunk in history.chunks(WRITE_CHUNK) {
            status_history::insert_status_history(conn, chunk).await?;
        }
        let connectivity = std::mem::take(&mut self.connectivity);
        for chunk in connectivity.chunks(WRITE_CHUNK) {
            connectivity_history::insert_connectivity_history(conn, chunk).await?;
        }
        let fleet = std::mem::take(&mut self.fleet);
        for chunk in fleet.chunks(WRITE_CHUNK) {
            fleet_history::insert_fleet_changes(conn, chunk).await?;
        }
        let usage = std::mem::take(&mut self.usage);
        let mut new = BTreeSet::new();
        for chunk in usage.chunks(WRITE_CHUNK) {
            new.extend(usage::insert_usage(conn, chunk).await?);
        }
        if rollups == Some(UsageRollups::Managed) && !new.is_empty() {
            let rows: Vec<&UsageRow> = usage.iter().filter(|r| new.contains(&r.position)).collect();
            crate::rollup_refresh::register(conn, &rows).await?;
            return Ok(true);
        }
        if add_rollups && !new.is_empty() {
            for (table, width) in [
                ("sim_usage_hourly", TimeDelta::hours(1)),
                ("sim_usage_daily", TimeDelta::days(1)),
            ] {
                let mut sums: HashMap<(String, DateTime<Utc>), [i64; 3]> = HashMap::new();
                for row in usage.iter().filter(|r| new.contains(&r.position)) {
                    // Buckets in UTC from the epoch, as TimescaleDB's `time_bucket` cuts them.
                    let bucket = row.observed_at.duration_trunc(width).unwrap_or(row.observed_at);
                    let sum = sums.entry((row.iccid.clone(), bucket)).or_default();
                    sum[0] += row.data_bytes;
                    sum[1] += row.sms_mo;
                    sum[2] += row.sms_mt;
                }
                // The whole fleet's bucket: the same sums without the SIM.
                let mut fleet: HashMap<(String, DateTime<Utc>), [i64; 3]> = HashMap::new();
                for ((_, bucket), [d, o, t]) in &sums {
                    let sum = fleet.entry((String::new(), *bucket)).or_default();
                    sum[0] += d;
                    sum[1] += o;
                    sum[2] += t;
                }
                usage::add_rollups(conn, table, &sums).await?;
                usage::add_rollups(conn, &table.replacen("sim_", "fleet_", 1), &fleet).await?;
            }
        }
        Ok(false)
    }

    /// Rows held in memory (SIMs, quotas, messages).
    pub fn rows_held(&self) -> usize {
        self.sims.len() + self.quotas.len() + self.sms.len()
    }

    /// Lets every held row go (after [`Fold::write_rows`]): later events load theirs again.
    pub fn forget_rows(&mut self) {
        debug_assert!(
            self.dirty_sims.is_empty() && self.dirty_quotas.is_empty() && self.dirty_sms.is_empty()
        );
        self.sims.clear();
        self.quotas.clear();
        self.sms.clear();
    }

    /// Loads the rows `needs` names that are not held (a rebuild's fold, once it let rows go).
    pub async fn load_missing(&mut self, conn: &mut PgConnection, needs: &Needs) -> Result<(), sqlx::Error> {
        let iccids = not_held(&needs.iccids, |iccid| self.sims.contains_key(iccid));
        let messages = not_held(&needs.messages, |message| self.sms.contains_key(message));
        if !iccids.is_empty() {
            self.sims.extend(sims::load_sims_by_iccid(conn, &iccids).await?);
            for (key, quota) in quotas::load_quotas(conn, &iccids).await? {
                self.quotas.entry(key).or_insert(quota);
            }
        }
        if !messages.is_empty() {
            self.sms.extend(sms::load_sms(conn, &messages).await?);
        }
        Ok(())
    }

    /// The SIM's row says its projection waits behind a parked event (as the park's own
    /// `UPDATE` does for a row already written).
    pub fn mark_parked(&mut self, iccid: &str) {
        if let Some(row) = self.sims.get_mut(iccid) {
            if row.projection != readmodel::PROJECTION_PARKED {
                row.projection = readmodel::PROJECTION_PARKED.to_owned();
                self.dirty_sims.insert(iccid.to_owned());
            }
        }
    }
}

/// The keys of `wanted` whose rows are not `held` in memory: those to load.
pub(crate) fn not_held<K: Clone>(wanted: &BTreeSet<K>, held: impl Fn(&K) -> bool) -> Vec<K> {
    wanted.iter().filter(|key| !held(key)).cloned().collect()
}

/// `last_position` / `updated_at` only move forward: a SIM event may come after a later quota
/// event of the same SIM (each aggregate is in order, not the SIM).
fn touch(row: &mut SimRow, e: &StoredEvent) {
    if row.last_position <= e.position {
        row.updated_at = e.recorded_at;
    }
    row.last_position = row.last_position.max(e.position);
}
