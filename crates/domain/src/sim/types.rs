//! Value types of the SIM aggregate's state and events.

use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

pub const MAX_LABEL_CHARS: usize = 100;
pub const MAX_TAGS: usize = 20;
pub const MAX_TAG_CHARS: usize = 50;

// Its words (`as_str`, `Display`, `FromStr`) are listed in `crate::spelled`.
/// The platform's view of a SIM's lifecycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum SimStatus {
    #[default]
    Inactive,
    Active,
    Suspended,
    /// Soft-deleted: the history stays readable, nothing else is accepted.
    Terminated,
}

/// The SIM's `status` field at 1NCE, spelled as 1NCE spells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
pub enum ProviderStatus {
    Enabled,
    Disabled,
}

impl fmt::Display for ProviderStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ProviderStatus::Enabled => "Enabled",
            ProviderStatus::Disabled => "Disabled",
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ChangeKind {
    Activation,
    Suspension,
}

/// A lifecycle change waiting for the connector; at most one at a time, so the order of
/// requests at 1NCE is never ambiguous.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingChange {
    pub kind: ChangeKind,
    pub request_id: Uuid,
    pub requested_at: DateTime<Utc>,
}

/// Label and IMEI lock waiting to be set at 1NCE; kept apart from [`PendingChange`] because
/// it does not block lifecycle changes (the PUT carries the provider's status as it is).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingUpdate {
    pub request_id: Uuid,
    pub label: Option<String>,
    pub imei_lock: bool,
    pub requested_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Connectivity {
    /// The visited network's operator.
    pub network: Option<String>,
    pub country: Option<String>,
    /// Radio access type, e.g. "LTE-M".
    pub rat: Option<String>,
    pub ip_address: Option<String>,
    pub last_seen_at: Option<DateTime<Utc>>,
}

/// Cumulative totals already recorded for one provider period (a day at 1NCE).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UsagePeriod {
    pub period_start: DateTime<Utc>,
    pub period_end: DateTime<Utc>,
    pub data_bytes: u64,
    pub sms_mo: u64,
    pub sms_mt: u64,
    /// The provider's final total of this closed period was taken as the reference
    /// (`UsageReconciled`): later `RecordUsage` reports of it change nothing (absent in
    /// snapshots taken before it existed).
    #[serde(default)]
    pub reconciled: bool,
}
