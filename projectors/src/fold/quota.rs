//! Quota events: the quota's row (as the quota aggregate's `apply`) and the totals its SIM's
//! row carries.

use chrono::{DateTime, Utc};
use domain::QuotaEvent;
use eventstore::StoredEvent;

use super::{touch, Fold, QuotaRow};

impl Fold {
    pub(super) fn quota_event(
        &mut self,
        e: &StoredEvent,
        iccid: &str,
        kind: &'static str,
        event: QuotaEvent,
    ) {
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
