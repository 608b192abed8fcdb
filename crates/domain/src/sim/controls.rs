//! Provider controls of one SIM carried out at 1NCE: the connectivity reset and auto top-up
//! on/off. Each is an intent (`…Requested`) that the sync-connector settles after calling 1NCE
//! (`…Completed`, `…Failed` with 1NCE's message, `…OutcomeUnknown` when the answer was lost).
//!
//! The state ([`SimControls`]) is folded by the same [`SimControls::apply`] in the aggregate
//! and in the `sims` read model, so both tell the same story.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{Sim, SimError, SimEvent, SimStatus};

/// Which control a settling command is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SimControl {
    ConnectivityReset,
    AutoTopUp,
}

/// How the connector settles a control request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum ControlOutcome {
    Completed,
    /// 1NCE refused it; `reason` carries 1NCE's message.
    Failed {
        reason: String,
    },
    /// The connector could not learn whether 1NCE took it.
    Unknown {
        reason: String,
    },
}

/// Where a control request stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ControlState {
    Pending,
    Completed,
    Failed,
    Unknown,
}

/// The last request of one control and its outcome.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ControlRecord {
    pub request_id: Uuid,
    pub requested_at: DateTime<Utc>,
    /// The auto top-up setting asked for (absent for a reset).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    pub state: ControlState,
    /// 1NCE's message (failed) or why the outcome is unknown.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub settled_at: Option<DateTime<Utc>>,
}

impl ControlRecord {
    pub fn is_pending(&self) -> bool {
        self.state == ControlState::Pending
    }
}

/// The SIM's provider controls as the platform knows them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SimControls {
    /// Auto top-up as last confirmed by 1NCE; `None` until the platform has set it (1NCE's
    /// SIM object does not report it).
    #[serde(default)]
    pub auto_topup: Option<bool>,
    #[serde(default)]
    pub last_auto_topup: Option<ControlRecord>,
    #[serde(default)]
    pub last_reset: Option<ControlRecord>,
}

impl SimControls {
    /// The pending request of `control`, if any.
    pub fn pending(&self, control: SimControl) -> Option<&ControlRecord> {
        self.record(control).filter(|r| r.is_pending())
    }

    fn record(&self, control: SimControl) -> Option<&ControlRecord> {
        match control {
            SimControl::ConnectivityReset => self.last_reset.as_ref(),
            SimControl::AutoTopUp => self.last_auto_topup.as_ref(),
        }
    }

    /// Folds a control event; other events change nothing. Returns whether it was one.
    pub fn apply(&mut self, event: &SimEvent) -> bool {
        let requested = |request_id: &Uuid, at: &DateTime<Utc>, enabled| ControlRecord {
            request_id: *request_id,
            requested_at: *at,
            enabled,
            state: ControlState::Pending,
            reason: None,
            settled_at: None,
        };
        match event {
            SimEvent::ConnectivityResetRequested {
                request_id,
                requested_at,
            } => self.last_reset = Some(requested(request_id, requested_at, None)),
            SimEvent::AutoTopUpChangeRequested {
                request_id,
                enabled,
                requested_at,
            } => self.last_auto_topup = Some(requested(request_id, requested_at, Some(*enabled))),
            SimEvent::ConnectivityResetCompleted {
                request_id,
                completed_at,
            } => settle(
                &mut self.last_reset,
                request_id,
                ControlState::Completed,
                None,
                completed_at,
            ),
            SimEvent::ConnectivityResetFailed {
                request_id,
                reason,
                failed_at,
            } => settle(
                &mut self.last_reset,
                request_id,
                ControlState::Failed,
                Some(reason),
                failed_at,
            ),
            SimEvent::ConnectivityResetOutcomeUnknown {
                request_id,
                reason,
                at,
            } => settle(
                &mut self.last_reset,
                request_id,
                ControlState::Unknown,
                Some(reason),
                at,
            ),
            SimEvent::AutoTopUpChangeCompleted {
                request_id,
                enabled,
                completed_at,
            } => {
                self.auto_topup = Some(*enabled);
                settle(
                    &mut self.last_auto_topup,
                    request_id,
                    ControlState::Completed,
                    None,
                    completed_at,
                )
            }
            SimEvent::AutoTopUpChangeFailed {
                request_id,
                reason,
                failed_at,
            } => settle(
                &mut self.last_auto_topup,
                request_id,
                ControlState::Failed,
                Some(reason),
                failed_at,
            ),
            SimEvent::AutoTopUpChangeOutcomeUnknown {
                request_id,
                reason,
                at,
            } => settle(
                &mut self.last_auto_topup,
                request_id,
                ControlState::Unknown,
                Some(reason),
                at,
            ),
            _ => return false,
        }
        true
    }
}

fn settle(
    record: &mut Option<ControlRecord>,
    request_id: &Uuid,
    state: ControlState,
    reason: Option<&String>,
    at: &DateTime<Utc>,
) {
    if let Some(r) = record.as_mut().filter(|r| r.request_id == *request_id) {
        r.state = state;
        r.reason = reason.cloned();
        r.settled_at = Some(*at);
    }
}

/// Whether the event settles a control request (see `Aggregate::is_settlement`).
pub(super) fn is_control_settlement(event: &SimEvent) -> bool {
    matches!(
        event,
        SimEvent::ConnectivityResetCompleted { .. }
            | SimEvent::ConnectivityResetFailed { .. }
            | SimEvent::ConnectivityResetOutcomeUnknown { .. }
            | SimEvent::AutoTopUpChangeCompleted { .. }
            | SimEvent::AutoTopUpChangeFailed { .. }
            | SimEvent::AutoTopUpChangeOutcomeUnknown { .. }
    )
}

impl Sim {
    /// A reset is for an active SIM (1NCE drops and re-attaches its data session); one already
    /// queued at the platform must settle first.
    pub(super) fn request_connectivity_reset(
        &self,
        request_id: Uuid,
        at: DateTime<Utc>,
    ) -> Result<Vec<SimEvent>, SimError> {
        if self.status != SimStatus::Active {
            return Err(SimError::NotActive { status: self.status });
        }
        if let Some(pending) = self.controls.pending(SimControl::ConnectivityReset) {
            return Err(SimError::ControlPending {
                control: SimControl::ConnectivityReset,
                request_id: pending.request_id,
            });
        }
        Ok(vec![SimEvent::ConnectivityResetRequested {
            request_id,
            requested_at: at,
        }])
    }

    /// Nothing when the setting is already what 1NCE has (and nothing else is pending) or
    /// already on its way; a pending request for the other value is superseded (the connector
    /// carries out only the newest).
    pub(super) fn request_auto_top_up(
        &self,
        request_id: Uuid,
        enabled: bool,
        at: DateTime<Utc>,
    ) -> Vec<SimEvent> {
        let pending = self.controls.pending(SimControl::AutoTopUp);
        let settled_same = pending.is_none() && self.controls.auto_topup == Some(enabled);
        if settled_same || pending.is_some_and(|p| p.enabled == Some(enabled)) {
            return vec![];
        }
        vec![SimEvent::AutoTopUpChangeRequested {
            request_id,
            enabled,
            requested_at: at,
        }]
    }

    pub(super) fn settle_control(
        &self,
        control: SimControl,
        request_id: Uuid,
        outcome: ControlOutcome,
        at: DateTime<Utc>,
    ) -> Result<Vec<SimEvent>, SimError> {
        let Some(pending) = self
            .controls
            .pending(control)
            .filter(|p| p.request_id == request_id)
        else {
            return Err(SimError::NoPendingControl { control, request_id });
        };
        Ok(vec![match (control, outcome) {
            (SimControl::ConnectivityReset, ControlOutcome::Completed) => {
                SimEvent::ConnectivityResetCompleted {
                    request_id,
                    completed_at: at,
                }
            }
            (SimControl::ConnectivityReset, ControlOutcome::Failed { reason }) => {
                SimEvent::ConnectivityResetFailed {
                    request_id,
                    reason,
                    failed_at: at,
                }
            }
            (SimControl::ConnectivityReset, ControlOutcome::Unknown { reason }) => {
                SimEvent::ConnectivityResetOutcomeUnknown {
                    request_id,
                    reason,
                    at,
                }
            }
            (SimControl::AutoTopUp, ControlOutcome::Completed) => SimEvent::AutoTopUpChangeCompleted {
                request_id,
                enabled: pending.enabled.unwrap_or_default(),
                completed_at: at,
            },
            (SimControl::AutoTopUp, ControlOutcome::Failed { reason }) => SimEvent::AutoTopUpChangeFailed {
                request_id,
                reason,
                failed_at: at,
            },
            (SimControl::AutoTopUp, ControlOutcome::Unknown { reason }) => {
                SimEvent::AutoTopUpChangeOutcomeUnknown {
                    request_id,
                    reason,
                    at,
                }
            }
        }])
    }
}
