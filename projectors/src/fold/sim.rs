//! SIM events: the SIM's row (registration, details, lifecycle, connectivity, usage rows) and
//! its status history.

use chrono::{DateTime, Utc};
use domain::{SimEvent, SimStatus};
use eventstore::StoredEvent;
use serde_json::Value;

use super::{touch, ConnectivityChange, Fold, SimRow, StatusChange, UsageRow};

impl Fold {
    pub(super) fn sim_event(&mut self, e: &StoredEvent, event: SimEvent) {
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
        // A reconciliation's difference (signed) is a usage row like a report's delta, so the
        // rows of the day add up to the provider's reference total.
        let usage = match &event {
            SimEvent::UsageRecorded {
                period_start,
                period_end,
                delta_data_bytes,
                delta_sms_mo,
                delta_sms_mt,
                ..
            } => Some((
                *period_start,
                *period_end,
                [
                    *delta_data_bytes as i64,
                    *delta_sms_mo as i64,
                    *delta_sms_mt as i64,
                ],
            )),
            SimEvent::UsageReconciled {
                period_start,
                period_end,
                difference_data_bytes,
                difference_sms_mo,
                difference_sms_mt,
                ..
            } => Some((
                *period_start,
                // Reconciled the next day: the difference belongs to the closed day, so its row
                // is kept inside it (the period's end is the next day's start).
                (*period_end - chrono::Duration::milliseconds(1)).max(*period_start),
                [*difference_data_bytes, *difference_sms_mo, *difference_sms_mt],
            )),
            _ => None,
        };
        if let Some((period_start, period_end, deltas)) = usage {
            // The usage row is written whether or not the SIM has a row.
            let occurred_at = e
                .metadata
                .get("occurred_at")
                .and_then(|v| serde_json::from_value::<DateTime<Utc>>(v.clone()).ok())
                .unwrap_or(e.recorded_at);
            self.usage.push(UsageRow {
                iccid: iccid.clone(),
                observed_at: occurred_at.clamp(period_start, period_end.max(period_start)),
                position: e.position,
                transaction_id: e.transaction_id,
                data_bytes: deltas[0],
                sms_mo: deltas[1],
                sms_mt: deltas[2],
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
                self.connectivity.push(ConnectivityChange {
                    iccid: iccid.clone(),
                    position: e.position,
                    observed_at,
                    recorded_at: e.recorded_at,
                    network: network.clone(),
                    country: country.clone(),
                    rat: rat.clone(),
                    ip_address: ip_address.clone(),
                    actor: actor(e),
                });
                row.network = network;
                row.country = country;
                row.rat = rat;
                row.ip_address = ip_address;
                row.last_seen_at = Some(observed_at);
            }
            // The label and IMEI lock are already the platform's; a provider update's outcome
            // is read from the event history.
            SimEvent::UsageRecorded { .. }
            | SimEvent::UsageReconciled { .. }
            | SimEvent::ProviderUpdateRequested { .. }
            | SimEvent::ProviderUpdateCompleted { .. }
            | SimEvent::ProviderUpdateFailed { .. }
            | SimEvent::ProviderUpdateOutcomeUnknown { .. } => {}
            // The SIM's controls fold as the aggregate folds them.
            event @ (SimEvent::ConnectivityResetRequested { .. }
            | SimEvent::ConnectivityResetCompleted { .. }
            | SimEvent::ConnectivityResetFailed { .. }
            | SimEvent::ConnectivityResetOutcomeUnknown { .. }
            | SimEvent::AutoTopUpChangeRequested { .. }
            | SimEvent::AutoTopUpChangeCompleted { .. }
            | SimEvent::AutoTopUpChangeFailed { .. }
            | SimEvent::AutoTopUpChangeOutcomeUnknown { .. }) => {
                row.controls.0.apply(&event);
            }
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
    pub(super) fn register(
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
}

fn status_change(e: &StoredEvent, from: Option<SimStatus>, to: SimStatus) -> StatusChange {
    StatusChange {
        iccid: e.aggregate_id.clone(),
        position: e.position,
        changed_at: e.recorded_at,
        from_status: from,
        to_status: to,
        event_type: e.event_type.clone(),
        actor: actor(e),
    }
}

fn actor(e: &StoredEvent) -> Option<String> {
    e.metadata.get("actor").and_then(Value::as_str).map(str::to_owned)
}
