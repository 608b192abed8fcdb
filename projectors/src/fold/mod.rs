//! Events folded into read-model rows in memory, then written back in bulk: a batch's SIMs,
//! quotas and messages are loaded once, every event of the batch is applied to them in log
//! order, and each changed row is written once ([`rows`]). The rules are those of
//! `readmodel::sim_view_as_of` (the auditors' replay), so that `GET /sims/{iccid}/state?as_of=now`
//! equals `GET /sims/{iccid}`: SIM and quota events move the SIM row's `last_position` /
//! `updated_at` (the event's `recorded_at`, never `now()`) forward only; SMS events do not
//! touch it.

use std::collections::{BTreeSet, HashMap};

use chrono::{DateTime, DurationRound, TimeDelta, Utc};
use domain::{Direction, QuotaEvent, SimEvent, SimStatus, SmsEvent, SmsStatus};
use eventstore::StoredEvent;
use serde_json::Value;
use sqlx::PgConnection;
use uuid::Uuid;

use crate::apply::{Decoded, UsageRollups};
use readmodel::{quotas, sims, sms, status_history, usage};
use readmodel::{QuotaRow, SimView as SimRow, SmsRow, StatusChange, UsageRow};

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
    usage: Vec<UsageRow>,
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

    /// Applies one decoded event to the rows.
    pub fn apply(&mut self, e: &StoredEvent, decoded: Decoded) {
        match decoded {
            Decoded::Sim(event) => self.sim_event(e, event),
            Decoded::Quota { iccid, kind, event } => self.quota_event(e, &iccid, kind, event),
            Decoded::Sms { message_id, event } => self.sms_event(e, message_id, event),
            Decoded::Unprojected => {
                tracing::debug!(aggregate_type = %e.aggregate_type, "no read model for this aggregate type");
            }
        }
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

    /// Writes the status changes and usage rows gathered since the last call, and the rollups
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
        let iccids: Vec<String> = needs
            .iccids
            .iter()
            .filter(|i| !self.sims.contains_key(*i))
            .cloned()
            .collect();
        let messages: Vec<Uuid> = needs
            .messages
            .iter()
            .filter(|m| !self.sms.contains_key(*m))
            .copied()
            .collect();
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

    fn sim_event(&mut self, e: &StoredEvent, event: SimEvent) {
        let iccid = e.aggregate_id.clone();
        if let SimEvent::SimRegistered {
            imsi,
            msisdn,
            label,
            tags,
            registered_at,
            ..
        } = &event
        {
            self.register(
                e,
                imsi.to_string(),
                msisdn.as_ref().map(|m| m.to_string()),
                label.clone(),
                tags.clone(),
                *registered_at,
            );
            return;
        }
        if let SimEvent::UsageRecorded {
            period_start,
            period_end,
            delta_data_bytes,
            delta_sms_mo,
            delta_sms_mt,
            ..
        } = &event
        {
            // The usage row is written whether or not the SIM has a row.
            let occurred_at = e
                .metadata
                .get("occurred_at")
                .and_then(|v| serde_json::from_value::<DateTime<Utc>>(v.clone()).ok())
                .unwrap_or(e.recorded_at);
            self.usage.push(UsageRow {
                iccid: iccid.clone(),
                observed_at: occurred_at.clamp(*period_start, (*period_end).max(*period_start)),
                position: e.position,
                transaction_id: e.transaction_id,
                data_bytes: *delta_data_bytes as i64,
                sms_mo: *delta_sms_mo as i64,
                sms_mt: *delta_sms_mt as i64,
            });
        }
        let Some(row) = self.sims.get_mut(&iccid) else {
            tracing::warn!(iccid, event_type = %e.event_type, "SIM event for a SIM without a row; skipped");
            return;
        };
        row.version = e.sequence;
        touch(row, e);
        let mut new_status: Option<SimStatus> = None;
        match event {
            SimEvent::SimRegistered { .. } => unreachable!("handled above"),
            SimEvent::SimLabelChanged { label } => row.label = label,
            SimEvent::SimTagsChanged { tags } => row.tags = tags,
            SimEvent::ImeiLockChanged { enabled } => row.imei_lock = enabled,
            SimEvent::ImeiRecorded { imei } => row.imei = Some(imei.to_string()),
            SimEvent::ActivationRequested { .. } => row.pending_change = Some("activation".into()),
            SimEvent::SuspensionRequested { .. } => row.pending_change = Some("suspension".into()),
            SimEvent::ActivationCompleted { .. } => {
                row.pending_change = None;
                row.provider_status = Some("Enabled".into());
                new_status = Some(SimStatus::Active);
            }
            SimEvent::SuspensionCompleted { .. } => {
                row.pending_change = None;
                row.provider_status = Some("Disabled".into());
                new_status = Some(SimStatus::Suspended);
            }
            SimEvent::ActivationFailed { .. } | SimEvent::SuspensionFailed { .. } => {
                row.pending_change = None
            }
            SimEvent::SimTerminated { terminated_at, .. } => {
                row.pending_change = None;
                row.terminated_at = Some(terminated_at);
                new_status = Some(SimStatus::Terminated);
            }
            SimEvent::ProviderStatusChanged { to, sim_status, .. } => {
                row.provider_status = Some(to.to_string());
                new_status = Some(sim_status);
            }
            SimEvent::ConnectivityChanged {
                network,
                country,
                rat,
                ip_address,
                observed_at,
            } => {
                row.network = network;
                row.country = country;
                row.rat = rat;
                row.ip_address = ip_address;
                row.last_seen_at = Some(observed_at);
            }
            SimEvent::UsageRecorded { .. } => {}
        }
        if let Some(new) = new_status {
            let row = self.sims.get_mut(&iccid).expect("looked up above");
            let old = std::mem::replace(&mut row.status, new);
            if old != new {
                self.history.push(status_change(e, Some(old), new));
            }
        }
        self.dirty_sims.insert(iccid);
    }

    /// `SimRegistered`: a new row, with whatever quotas were reported before it (as in the
    /// replay); a SIM registered again keeps its other columns.
    fn register(
        &mut self,
        e: &StoredEvent,
        imsi: String,
        msisdn: Option<String>,
        label: Option<String>,
        tags: Vec<String>,
        registered_at: DateTime<Utc>,
    ) {
        let iccid = e.aggregate_id.clone();
        let quota = |kind: &str| self.quotas.get(&(iccid.clone(), kind.to_owned()));
        let (data, sms) = (quota("data").cloned(), quota("sms").cloned());
        let row = self.sims.entry(iccid.clone()).or_insert_with(|| SimRow {
            data_total: data.as_ref().map(|q| q.total),
            data_remaining: data.as_ref().map(|q| q.remaining),
            data_expiry: data.as_ref().and_then(|q| q.expiry_date),
            sms_total: sms.as_ref().map(|q| q.total),
            sms_remaining: sms.as_ref().map(|q| q.remaining),
            sms_expiry: sms.as_ref().and_then(|q| q.expiry_date),
            updated_at: e.recorded_at,
            ..SimRow::registered(iccid.clone(), String::new(), registered_at)
        });
        row.imsi = imsi;
        row.msisdn = msisdn;
        row.label = label;
        row.tags = tags;
        row.status = SimStatus::Inactive;
        row.registered_at = registered_at;
        row.version = e.sequence;
        row.last_position = e.position;
        row.updated_at = e.recorded_at;
        self.history.push(status_change(e, None, SimStatus::Inactive));
        self.dirty_sims.insert(iccid);
    }

    fn quota_event(&mut self, e: &StoredEvent, iccid: &str, kind: &'static str, event: QuotaEvent) {
        let key = (iccid.to_owned(), kind.to_owned());
        let q = self
            .quotas
            .entry(key.clone())
            .or_insert_with(|| QuotaRow::new(iccid, kind, e.position, e.recorded_at));
        q.version = e.sequence;
        q.last_position = e.position;
        q.updated_at = e.recorded_at;
        match event {
            QuotaEvent::QuotaAssigned {
                total,
                remaining,
                expiry_date,
                period,
                ..
            } => {
                q.expiry_date = expiry_date;
                numbers(q, total, remaining, period);
            }
            QuotaEvent::QuotaConsumptionRecorded { remaining, .. } => {
                q.remaining = remaining as i64;
                q.exhausted = q.remaining == 0 && q.thresholds_crossed.contains(&100);
            }
            QuotaEvent::QuotaThresholdCrossed { threshold, .. } => {
                let threshold = i32::from(threshold);
                if !q.thresholds_crossed.contains(&threshold) {
                    q.thresholds_crossed.push(threshold);
                }
            }
            QuotaEvent::QuotaExhausted { .. } => q.exhausted = true,
            QuotaEvent::QuotaExpired { .. } => q.expired = true,
            QuotaEvent::TopUpRequested {
                request_id,
                volume,
                requested_at,
                ..
            } => {
                q.pending_topup_id = Some(request_id);
                q.pending_topup_volume = Some(volume as i64);
                q.last_topup_at = Some(requested_at);
                q.last_topup_status = Some("requested".into());
            }
            QuotaEvent::TopUpCompleted {
                total,
                remaining,
                period,
                ..
            } => {
                // The event carries no time of its own: when it was recorded.
                settle_topup(q, e.recorded_at, "completed");
                numbers(q, total, remaining, period);
            }
            QuotaEvent::TopUpFailed { failed_at, .. } => settle_topup(q, failed_at, "failed"),
            QuotaEvent::TopUpOutcomeUnknown { at, .. } => settle_topup(q, at, "unknown"),
        }
        let (total, remaining, expiry) = (q.total, q.remaining, q.expiry_date);
        self.dirty_quotas.insert(key);
        // The SIM's summary of this quota, and its last position.
        if let Some(sim) = self.sims.get_mut(iccid) {
            if kind == "data" {
                (sim.data_total, sim.data_remaining, sim.data_expiry) =
                    (Some(total), Some(remaining), expiry);
            } else {
                (sim.sms_total, sim.sms_remaining, sim.sms_expiry) = (Some(total), Some(remaining), expiry);
            }
            touch(sim, e);
            self.dirty_sims.insert(iccid.to_owned());
        }
    }

    fn sms_event(&mut self, e: &StoredEvent, message_id: Uuid, event: SmsEvent) {
        let iccid = event.iccid().to_string();
        let fresh = |direction: Direction, status: SmsStatus, payload: String| SmsRow {
            message_id,
            iccid: iccid.clone(),
            direction,
            status,
            payload,
            encoding: None,
            parts: None,
            source_address: None,
            provider_message_id: None,
            failure_reason: None,
            requested_at: None,
            submitted_at: None,
            delivered_at: None,
            failed_at: None,
            received_at: None,
            version: e.sequence,
            last_position: e.position,
            updated_at: e.recorded_at,
        };
        match event {
            SmsEvent::SmsSendRequested {
                payload,
                source_address,
                encoding,
                parts,
                requested_at,
                ..
            } => {
                let row = self.sms.entry(message_id).or_insert_with(|| {
                    fresh(Direction::MobileTerminated, SmsStatus::Requested, String::new())
                });
                row.iccid = iccid;
                row.direction = Direction::MobileTerminated;
                row.status = SmsStatus::Requested;
                row.payload = payload;
                row.encoding = serde_json::to_value(encoding)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_owned));
                row.parts = Some(i32::from(parts));
                row.source_address = source_address;
                row.requested_at = Some(requested_at);
            }
            SmsEvent::SmsReceived {
                payload,
                source_address,
                provider_message_id,
                received_at,
                ..
            } => {
                let row = self.sms.entry(message_id).or_insert_with(|| {
                    fresh(Direction::MobileOriginated, SmsStatus::Received, String::new())
                });
                row.iccid = iccid;
                row.direction = Direction::MobileOriginated;
                row.status = SmsStatus::Received;
                row.payload = payload;
                row.source_address = source_address;
                row.provider_message_id = provider_message_id;
                row.received_at = Some(received_at);
            }
            other => {
                let Some(row) = self.sms.get_mut(&message_id) else {
                    return; // as an UPDATE of a row that is not there
                };
                match other {
                    SmsEvent::SmsSubmitted {
                        provider_message_id,
                        submitted_at,
                        ..
                    } => {
                        row.status = SmsStatus::Submitted;
                        row.provider_message_id = provider_message_id;
                        row.submitted_at = Some(submitted_at);
                    }
                    SmsEvent::SmsDelivered { delivered_at, .. } => {
                        row.status = SmsStatus::Delivered;
                        row.delivered_at = Some(delivered_at);
                    }
                    SmsEvent::SmsFailed {
                        reason, failed_at, ..
                    } => {
                        row.status = SmsStatus::Failed;
                        row.failure_reason = Some(reason);
                        row.failed_at = Some(failed_at);
                    }
                    SmsEvent::SmsOutcomeUnknown { reason, .. } => {
                        row.status = SmsStatus::Unknown;
                        row.failure_reason = Some(reason);
                    }
                    SmsEvent::SmsSendRequested { .. } | SmsEvent::SmsReceived { .. } => {
                        unreachable!("handled above")
                    }
                }
            }
        }
        let row = self.sms.get_mut(&message_id).expect("present");
        row.version = e.sequence;
        row.last_position = e.position;
        row.updated_at = e.recorded_at;
        self.dirty_sms.insert(message_id);
    }
}

/// `last_position` / `updated_at` only move forward: a SIM event may come after a later quota
/// event of the same SIM (each aggregate is in order, not the SIM).
fn touch(row: &mut SimRow, e: &StoredEvent) {
    if row.last_position <= e.position {
        row.updated_at = e.recorded_at;
    }
    row.last_position = row.last_position.max(e.position);
}

/// As the quota aggregate's `apply`: a new period re-arms every alert; `exhausted` follows
/// `remaining` once the period's 100 % alert fired (judged on the alerts before this event).
fn numbers(q: &mut QuotaRow, total: u64, remaining: u64, period: u32) {
    let (remaining, period) = (remaining as i64, period as i32);
    let new_period = q.period != period;
    q.exhausted = !new_period && remaining == 0 && q.thresholds_crossed.contains(&100);
    if new_period {
        q.thresholds_crossed.clear();
        q.expired = false;
    }
    q.total = total as i64;
    q.remaining = remaining;
    q.period = period;
}

fn settle_topup(q: &mut QuotaRow, at: DateTime<Utc>, status: &str) {
    q.pending_topup_id = None;
    q.pending_topup_volume = None;
    q.last_topup_at = Some(at);
    q.last_topup_status = Some(status.into());
}

fn status_change(e: &StoredEvent, from: Option<SimStatus>, to: SimStatus) -> StatusChange {
    StatusChange {
        iccid: e.aggregate_id.clone(),
        position: e.position,
        changed_at: e.recorded_at,
        from_status: from,
        to_status: to,
        event_type: e.event_type.clone(),
        actor: e.metadata.get("actor").and_then(Value::as_str).map(str::to_owned),
    }
}
