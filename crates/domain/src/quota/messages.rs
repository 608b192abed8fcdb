//! What the quota aggregate accepts (commands), records (events) and refuses (errors).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::ids::{Iccid, QuotaKind};
use crate::sim::SimStatus;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "command")]
pub enum QuotaCommand {
    /// The provider's full view of the quota. Sending the same view again is a no-op; a view
    /// with only `remaining` changed counts as consumption.
    Assign {
        iccid: Iccid,
        kind: QuotaKind,
        total: u64,
        remaining: u64,
        expiry_date: Option<DateTime<Utc>>,
        at: DateTime<Utc>,
    },
    RecordConsumption {
        remaining: u64,
        at: DateTime<Utc>,
    },
    /// Safe to send on every sweep: it records nothing unless the quota is due and not yet
    /// marked expired.
    Expire {
        at: DateTime<Utc>,
    },
    /// `sim_status` is the SIM's current status, passed by the caller so that this rule needs
    /// no other aggregate.
    RequestTopUp {
        request_id: Uuid,
        iccid: Iccid,
        kind: QuotaKind,
        volume: i64,
        payment_method: Option<String>,
        sim_status: SimStatus,
        at: DateTime<Utc>,
    },
    CompleteTopUp {
        request_id: Uuid,
        volume_added: u64,
        at: DateTime<Utc>,
    },
    FailTopUp {
        request_id: Uuid,
        reason: String,
        at: DateTime<Utc>,
    },
    /// The provider may or may not have carried the top-up out, and its state does not tell.
    RecordTopUpOutcomeUnknown {
        request_id: Uuid,
        reason: String,
        at: DateTime<Utc>,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(tag = "event_type", content = "payload")]
pub enum QuotaEvent {
    /// `period` is higher than the previous one when this assignment starts a new period.
    QuotaAssigned {
        iccid: Iccid,
        kind: QuotaKind,
        total: u64,
        remaining: u64,
        expiry_date: Option<DateTime<Utc>>,
        period: u32,
    },
    QuotaConsumptionRecorded {
        used: u64,
        remaining: u64,
        at: DateTime<Utc>,
    },
    QuotaThresholdCrossed {
        threshold: u8,
        used_percent: u8,
        period: u32,
    },
    QuotaExhausted {
        period: u32,
    },
    /// `expired_at` is the quota's expiry date, not the time the sweep noticed it.
    QuotaExpired {
        expired_at: DateTime<Utc>,
        period: u32,
    },
    TopUpRequested {
        request_id: Uuid,
        iccid: Iccid,
        kind: QuotaKind,
        volume: u64,
        payment_method: Option<String>,
        requested_at: DateTime<Utc>,
    },
    /// `total` and `remaining` are the values after the top-up; it starts period `period`.
    TopUpCompleted {
        request_id: Uuid,
        volume_added: u64,
        total: u64,
        remaining: u64,
        period: u32,
    },
    TopUpFailed {
        request_id: Uuid,
        reason: String,
        failed_at: DateTime<Utc>,
    },
    /// Nobody can tell whether the provider carried the top-up out; it is no longer pending,
    /// so an operator who has checked with the provider may request another. A later
    /// assignment from the provider shows the volume either way.
    TopUpOutcomeUnknown {
        request_id: Uuid,
        reason: String,
        at: DateTime<Utc>,
    },
}

impl_domain_event!(QuotaEvent [
    QuotaAssigned,
    QuotaConsumptionRecorded,
    QuotaThresholdCrossed,
    QuotaExhausted,
    QuotaExpired,
    TopUpRequested,
    TopUpCompleted,
    TopUpFailed,
    TopUpOutcomeUnknown,
]);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QuotaError {
    #[error("quota not found: the provider has not assigned it yet")]
    NotFound,
    #[error("invalid quota: {0}")]
    Invalid(String),
    #[error("SIM is terminated; it cannot be topped up")]
    SimTerminated,
    #[error("top-up volume must be positive, got {0}")]
    InvalidTopUpVolume(i64),
    #[error("a top-up ({0}) is still pending; wait for its outcome")]
    TopUpPending(Uuid),
    #[error("no pending top-up with id {0}")]
    NoPendingTopUp(Uuid),
}

impl_domain_error!(QuotaError {
    NotFound => "QUOTA_NOT_FOUND", NotFound;
    Invalid => "INVALID_QUOTA", Validation;
    SimTerminated => "SIM_TERMINATED", Gone;
    InvalidTopUpVolume => "INVALID_TOPUP_VOLUME", Validation;
    TopUpPending => "TOPUP_PENDING", Conflict;
    NoPendingTopUp => "NO_PENDING_TOPUP", Conflict;
});
