//! The account's self-set monthly limits (data, MT-SMS, MO-SMS). At 1NCE they are account-wide
//! (`POST /v1/sims/limits` sets them for all SIMs), so they are one aggregate of the account,
//! not of a SIM: aggregate type `account_limits`, id [`ACCOUNT_LIMITS_ID`], and its events carry
//! [`ACCOUNT_SUBJECT_TOKEN`] where SIM events carry the ICCID (the event store's `iccid` column
//! and the NATS subject `sim.v1.<token>.<event_type>`).
//!
//! A change is an intent (`AccountLimitsChangeRequested`) the sync-connector carries out and
//! settles (completed, failed with 1NCE's message, or unknown), like the SIM's controls.
//! Limits are chosen by the ids 1NCE lists per service (`GET /v1/sims/{service}/limits`);
//! 1NCE itself refuses an id it does not list, and the request then ends failed.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::sim::{ControlOutcome, ControlState};
use crate::Aggregate;

#[cfg(test)]
mod tests;

/// The one aggregate id of the account's limits.
pub const ACCOUNT_LIMITS_ID: &str = "account";
/// What the account's events carry instead of an ICCID (event store column, NATS subject
/// token). Kept here, in one place, so a later move of non-SIM aggregates off the ICCID token
/// changes one constant.
pub const ACCOUNT_SUBJECT_TOKEN: &str = "account";

/// Limit ids as 1NCE's `SetLimitsRequest` takes them; a missing one stays as it is.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct LimitIds {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_limit_id: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sms_mt_limit_id: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sms_mo_limit_id: Option<u64>,
}

impl LimitIds {
    fn is_empty(&self) -> bool {
        self.data_limit_id.is_none() && self.sms_mt_limit_id.is_none() && self.sms_mo_limit_id.is_none()
    }

    /// `self` with the ids `change` gives.
    fn merged(self, change: &LimitIds) -> LimitIds {
        LimitIds {
            data_limit_id: change.data_limit_id.or(self.data_limit_id),
            sms_mt_limit_id: change.sms_mt_limit_id.or(self.sms_mt_limit_id),
            sms_mo_limit_id: change.sms_mo_limit_id.or(self.sms_mo_limit_id),
        }
    }
}

/// The last change request and where it stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LimitsRecord {
    pub request_id: Uuid,
    pub requested_at: DateTime<Utc>,
    pub limits: LimitIds,
    pub state: ControlState,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub settled_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountLimits {
    /// The ids set through the platform and confirmed by 1NCE (none until the first).
    current: LimitIds,
    last: Option<LimitsRecord>,
}

impl AccountLimits {
    pub fn current(&self) -> &LimitIds {
        &self.current
    }
    pub fn last(&self) -> Option<&LimitsRecord> {
        self.last.as_ref()
    }
    pub fn pending(&self) -> Option<&LimitsRecord> {
        self.last.as_ref().filter(|r| r.state == ControlState::Pending)
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "command")]
pub enum AccountLimitsCommand {
    RequestChange {
        request_id: Uuid,
        limits: LimitIds,
        at: DateTime<Utc>,
    },
    Settle {
        request_id: Uuid,
        outcome: ControlOutcome,
        at: DateTime<Utc>,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(tag = "event_type", content = "payload")]
pub enum AccountLimitsEvent {
    /// The account's self-set limits are to be set at 1NCE (the ids given; others unchanged).
    AccountLimitsChangeRequested {
        request_id: Uuid,
        limits: LimitIds,
        requested_at: DateTime<Utc>,
    },
    AccountLimitsChangeCompleted {
        request_id: Uuid,
        completed_at: DateTime<Utc>,
    },
    /// 1NCE refused the change (e.g. an id it does not list); `reason` carries its message.
    AccountLimitsChangeFailed {
        request_id: Uuid,
        reason: String,
        failed_at: DateTime<Utc>,
    },
    AccountLimitsChangeOutcomeUnknown {
        request_id: Uuid,
        reason: String,
        at: DateTime<Utc>,
    },
}

impl_domain_event!(AccountLimitsEvent [
    AccountLimitsChangeRequested,
    AccountLimitsChangeCompleted,
    AccountLimitsChangeFailed,
    AccountLimitsChangeOutcomeUnknown,
]);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AccountLimitsError {
    #[error("invalid limits: {0}")]
    Invalid(String),
    #[error("a limits change ({request_id}) is still pending; wait for its outcome")]
    ChangePending { request_id: Uuid },
    #[error("no pending limits change with id {request_id}")]
    NoPendingRequest { request_id: Uuid },
}

impl_domain_error!(AccountLimitsError {
    Invalid => "INVALID_LIMITS", Validation;
    ChangePending => "CHANGE_PENDING", Conflict;
    NoPendingRequest => "NO_PENDING_REQUEST", Conflict;
});

impl Aggregate for AccountLimits {
    const TYPE: &'static str = "account_limits";
    type Command = AccountLimitsCommand;
    type Event = AccountLimitsEvent;
    type Error = AccountLimitsError;

    fn handle(&self, command: AccountLimitsCommand) -> Result<Vec<AccountLimitsEvent>, AccountLimitsError> {
        match command {
            AccountLimitsCommand::RequestChange {
                request_id,
                limits,
                at,
            } => {
                if limits.is_empty() {
                    return Err(AccountLimitsError::Invalid(
                        "give at least one of data_limit_id, sms_mt_limit_id, sms_mo_limit_id".into(),
                    ));
                }
                if let Some(pending) = self.pending() {
                    return Err(AccountLimitsError::ChangePending {
                        request_id: pending.request_id,
                    });
                }
                // The same ids as confirmed already: nothing to carry out.
                if self.current.merged(&limits) == self.current {
                    return Ok(vec![]);
                }
                Ok(vec![AccountLimitsEvent::AccountLimitsChangeRequested {
                    request_id,
                    limits,
                    requested_at: at,
                }])
            }
            AccountLimitsCommand::Settle {
                request_id,
                outcome,
                at,
            } => {
                if self.pending().is_none_or(|p| p.request_id != request_id) {
                    return Err(AccountLimitsError::NoPendingRequest { request_id });
                }
                Ok(vec![match outcome {
                    ControlOutcome::Completed => AccountLimitsEvent::AccountLimitsChangeCompleted {
                        request_id,
                        completed_at: at,
                    },
                    ControlOutcome::Failed { reason } => AccountLimitsEvent::AccountLimitsChangeFailed {
                        request_id,
                        reason,
                        failed_at: at,
                    },
                    ControlOutcome::Unknown { reason } => {
                        AccountLimitsEvent::AccountLimitsChangeOutcomeUnknown {
                            request_id,
                            reason,
                            at,
                        }
                    }
                }])
            }
        }
    }

    fn apply(&mut self, event: &AccountLimitsEvent) {
        let (request_id, state, reason, at) = match event {
            AccountLimitsEvent::AccountLimitsChangeRequested {
                request_id,
                limits,
                requested_at,
            } => {
                self.last = Some(LimitsRecord {
                    request_id: *request_id,
                    requested_at: *requested_at,
                    limits: *limits,
                    state: ControlState::Pending,
                    reason: None,
                    settled_at: None,
                });
                return;
            }
            AccountLimitsEvent::AccountLimitsChangeCompleted {
                request_id,
                completed_at,
            } => (request_id, ControlState::Completed, None, completed_at),
            AccountLimitsEvent::AccountLimitsChangeFailed {
                request_id,
                reason,
                failed_at,
            } => (request_id, ControlState::Failed, Some(reason), failed_at),
            AccountLimitsEvent::AccountLimitsChangeOutcomeUnknown {
                request_id,
                reason,
                at,
            } => (request_id, ControlState::Unknown, Some(reason), at),
        };
        let Some(last) = self.last.as_mut().filter(|l| l.request_id == *request_id) else {
            return;
        };
        last.state = state;
        last.reason = reason.cloned();
        last.settled_at = Some(*at);
        if state == ControlState::Completed {
            self.current = self.current.merged(&last.limits);
        }
    }

    fn is_settlement(event: &AccountLimitsEvent) -> bool {
        !matches!(event, AccountLimitsEvent::AccountLimitsChangeRequested { .. })
    }
}
