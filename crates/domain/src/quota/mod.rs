//! The quota aggregate: one per SIM and kind (data in bytes, SMS in messages).
//!
//! 1NCE owns the numbers; the platform records what the provider reports and derives alerts
//! (80 % and 100 % used, exhausted, expired) exactly once per quota period, so a poll that
//! repeats itself never alerts twice. Top-ups follow the intent-then-confirmation pattern.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::ids::{Iccid, QuotaKind};
use crate::sim::SimStatus;
use crate::Aggregate;

mod messages;
mod state;

pub use messages::{QuotaCommand, QuotaError, QuotaEvent};
pub use state::QuotaState;

#[cfg(test)]
mod proptests;
#[cfg(test)]
mod tests;

/// Used-percentages that raise an alert, in the order they are crossed.
pub const THRESHOLDS: [u8; 2] = [80, 100];

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingTopUp {
    pub request_id: Uuid,
    pub volume: u64,
    pub payment_method: Option<String>,
    pub requested_at: DateTime<Utc>,
}

/// State of one quota (aggregate id = `quota_aggregate_id(iccid, kind)`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Quota {
    /// Whether the provider has reported this quota; a top-up may come first.
    assigned: bool,
    iccid: Option<Iccid>,
    kind: Option<QuotaKind>,
    total: u64,
    remaining: u64,
    expiry_date: Option<DateTime<Utc>>,
    /// 0 before the first period; alerts are "once per period".
    period: u32,
    thresholds_emitted: Vec<u8>,
    exhausted: bool,
    expired: bool,
    pending_top_up: Option<PendingTopUp>,
}

impl Quota {
    pub fn is_assigned(&self) -> bool {
        self.assigned
    }
    pub fn iccid(&self) -> Option<&Iccid> {
        self.iccid.as_ref()
    }
    pub fn kind(&self) -> Option<QuotaKind> {
        self.kind
    }
    pub fn total(&self) -> u64 {
        self.total
    }
    pub fn remaining(&self) -> u64 {
        self.remaining
    }
    pub fn used(&self) -> u64 {
        self.total - self.remaining
    }
    pub fn expiry_date(&self) -> Option<DateTime<Utc>> {
        self.expiry_date
    }
    pub fn period(&self) -> u32 {
        self.period
    }
    pub fn thresholds_emitted(&self) -> &[u8] {
        &self.thresholds_emitted
    }
    pub fn is_exhausted(&self) -> bool {
        self.exhausted
    }
    pub fn is_expired(&self) -> bool {
        self.expired
    }
    pub fn pending_top_up(&self) -> Option<&PendingTopUp> {
        self.pending_top_up.as_ref()
    }
}

/// Collects events while folding them into a scratch copy of the state, so that rules that
/// follow (thresholds after an assignment) see the state those events produce.
struct Decision {
    next: Quota,
    events: Vec<QuotaEvent>,
}

impl Decision {
    fn new(state: &Quota) -> Self {
        Decision {
            next: state.clone(),
            events: Vec::new(),
        }
    }

    fn emit(&mut self, event: QuotaEvent) {
        self.next.apply(&event);
        self.events.push(event);
    }

    /// Alerts that the current numbers call for and this period has not raised yet.
    fn evaluate_thresholds(&mut self) {
        let (total, period) = (self.next.total, self.next.period);
        // A zero quota has nothing to use up; alerting on it would be noise.
        if total == 0 {
            return;
        }
        let used = u128::from(self.next.used());
        let used_percent = (used * 100 / u128::from(total)).min(100) as u8;
        for threshold in THRESHOLDS {
            let crossed = used * 100 >= u128::from(threshold) * u128::from(total);
            if crossed && !self.next.thresholds_emitted.contains(&threshold) {
                self.emit(QuotaEvent::QuotaThresholdCrossed {
                    threshold,
                    used_percent,
                    period,
                });
                if threshold == 100 {
                    self.emit(QuotaEvent::QuotaExhausted { period });
                }
            }
        }
    }

    fn finish(self) -> Result<Vec<QuotaEvent>, QuotaError> {
        Ok(self.events)
    }
}

impl Quota {
    /// The aggregate id fixes the SIM and kind; a command naming others was routed wrongly.
    fn check_identity(&self, iccid: &Iccid, kind: QuotaKind) -> Result<(), QuotaError> {
        match (&self.iccid, self.kind) {
            (Some(i), Some(k)) if i != iccid || k != kind => Err(QuotaError::Invalid(format!(
                "this quota belongs to {i}:{k}, not {iccid}:{kind}"
            ))),
            _ => Ok(()),
        }
    }

    fn check_remaining(&self, remaining: u64, total: u64) -> Result<(), QuotaError> {
        if remaining > total {
            return Err(QuotaError::Invalid(format!(
                "remaining {remaining} exceeds total {total}"
            )));
        }
        Ok(())
    }

    fn consume(&self, d: &mut Decision, remaining: u64, at: DateTime<Utc>) {
        if remaining != self.remaining {
            d.emit(QuotaEvent::QuotaConsumptionRecorded {
                used: self.total - remaining,
                remaining,
                at,
            });
            d.evaluate_thresholds();
        }
    }
}

impl Aggregate for Quota {
    const TYPE: &'static str = "quota";
    type Command = QuotaCommand;
    type Event = QuotaEvent;
    type Error = QuotaError;

    fn handle(&self, command: QuotaCommand) -> Result<Vec<QuotaEvent>, QuotaError> {
        let mut d = Decision::new(self);
        match command {
            QuotaCommand::Assign {
                iccid,
                kind,
                total,
                remaining,
                expiry_date,
                at,
            } => {
                self.check_remaining(remaining, total)?;
                self.check_identity(&iccid, kind)?;
                let new_period = !self.assigned || expiry_date != self.expiry_date || total > self.total;
                if new_period || total != self.total {
                    d.emit(QuotaEvent::QuotaAssigned {
                        iccid,
                        kind,
                        total,
                        remaining,
                        expiry_date,
                        period: if new_period { self.period + 1 } else { self.period },
                    });
                    d.evaluate_thresholds();
                } else {
                    self.consume(&mut d, remaining, at);
                }
            }
            QuotaCommand::RecordConsumption { remaining, at } => {
                if !self.assigned {
                    return Err(QuotaError::NotFound);
                }
                self.check_remaining(remaining, self.total)?;
                self.consume(&mut d, remaining, at);
            }
            QuotaCommand::Expire { at } => {
                if !self.assigned {
                    return Err(QuotaError::NotFound);
                }
                match self.expiry_date {
                    Some(expiry) if expiry <= at && !self.expired => d.emit(QuotaEvent::QuotaExpired {
                        expired_at: expiry,
                        period: self.period,
                    }),
                    _ => {}
                }
            }
            QuotaCommand::RequestTopUp {
                request_id,
                iccid,
                kind,
                volume,
                payment_method,
                sim_status,
                at,
            } => {
                if sim_status == SimStatus::Terminated {
                    return Err(QuotaError::SimTerminated);
                }
                if volume <= 0 {
                    return Err(QuotaError::InvalidTopUpVolume(volume));
                }
                self.check_identity(&iccid, kind)?;
                if let Some(p) = &self.pending_top_up {
                    return Err(QuotaError::TopUpPending(p.request_id));
                }
                d.emit(QuotaEvent::TopUpRequested {
                    request_id,
                    iccid,
                    kind,
                    volume: volume as u64,
                    payment_method: payment_method
                        .map(|m| m.trim().to_owned())
                        .filter(|m| !m.is_empty()),
                    requested_at: at,
                });
            }
            QuotaCommand::CompleteTopUp {
                request_id,
                volume_added,
                at: _,
            } => {
                self.check_pending(request_id)?;
                d.emit(QuotaEvent::TopUpCompleted {
                    request_id,
                    volume_added,
                    total: self.total.saturating_add(volume_added),
                    remaining: self.remaining.saturating_add(volume_added),
                    period: self.period + 1,
                });
                d.evaluate_thresholds();
            }
            QuotaCommand::FailTopUp {
                request_id,
                reason,
                at,
            } => {
                self.check_pending(request_id)?;
                d.emit(QuotaEvent::TopUpFailed {
                    request_id,
                    reason,
                    failed_at: at,
                });
            }
            QuotaCommand::RecordTopUpOutcomeUnknown {
                request_id,
                reason,
                at,
            } => {
                self.check_pending(request_id)?;
                d.emit(QuotaEvent::TopUpOutcomeUnknown {
                    request_id,
                    reason,
                    at,
                });
            }
        }
        d.finish()
    }

    fn apply(&mut self, event: &QuotaEvent) {
        match event {
            QuotaEvent::QuotaAssigned {
                iccid,
                kind,
                total,
                remaining,
                expiry_date,
                period,
            } => {
                self.assigned = true;
                self.iccid = Some(iccid.clone());
                self.kind = Some(*kind);
                self.total = *total;
                self.expiry_date = *expiry_date;
                self.set_remaining(*remaining);
                self.enter_period(*period);
            }
            QuotaEvent::QuotaConsumptionRecorded { remaining, .. } => self.set_remaining(*remaining),
            QuotaEvent::QuotaThresholdCrossed { threshold, .. } => {
                if !self.thresholds_emitted.contains(threshold) {
                    self.thresholds_emitted.push(*threshold);
                }
            }
            QuotaEvent::QuotaExhausted { .. } => self.exhausted = true,
            QuotaEvent::QuotaExpired { .. } => self.expired = true,
            QuotaEvent::TopUpRequested {
                request_id,
                iccid,
                kind,
                volume,
                payment_method,
                requested_at,
            } => {
                self.iccid.get_or_insert_with(|| iccid.clone());
                self.kind.get_or_insert(*kind);
                self.pending_top_up = Some(PendingTopUp {
                    request_id: *request_id,
                    volume: *volume,
                    payment_method: payment_method.clone(),
                    requested_at: *requested_at,
                });
            }
            QuotaEvent::TopUpCompleted {
                total,
                remaining,
                period,
                ..
            } => {
                self.pending_top_up = None;
                self.total = *total;
                self.set_remaining(*remaining);
                self.enter_period(*period);
            }
            QuotaEvent::TopUpFailed { .. } | QuotaEvent::TopUpOutcomeUnknown { .. } => {
                self.pending_top_up = None
            }
        }
    }
}

impl Quota {
    fn check_pending(&self, request_id: Uuid) -> Result<(), QuotaError> {
        match &self.pending_top_up {
            Some(p) if p.request_id == request_id => Ok(()),
            _ => Err(QuotaError::NoPendingTopUp(request_id)),
        }
    }

    /// `exhausted` follows the numbers once the period's exhaustion alert has fired, so a
    /// provider correction up and back down is reflected without a second alert.
    fn set_remaining(&mut self, remaining: u64) {
        self.remaining = remaining;
        self.exhausted = remaining == 0 && self.thresholds_emitted.contains(&100);
    }

    /// A new period re-arms every alert.
    fn enter_period(&mut self, period: u32) {
        if period != self.period {
            self.period = period;
            self.thresholds_emitted.clear();
            self.exhausted = false;
            self.expired = false;
        }
    }
}
