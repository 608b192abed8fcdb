//! What the connector keeps of each provider answer: small, comparable values, so that "the
//! same as last time" is an equality and a difference names the field that changed.

use std::collections::BTreeMap;

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

/// A SIM-list entry, reduced to what the platform tracks.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListEntry {
    pub imsi: Option<String>,
    pub msisdn: Option<String>,
    /// `Enabled`, `Disabled`, or whatever else the provider says.
    pub status: Option<String>,
    pub imei: Option<String>,
    pub imei_lock: Option<bool>,
    pub ip_address: Option<String>,
    pub label: Option<String>,
    /// The list's `current_quota` in bytes and the level (0: > 20 % left, 1: < 20 %, 2: none
    /// left). Per the OpenAPI `current_quota` is "the overall set data quota" (the total, as
    /// the simulator reports it), not what is left: it moves with top-ups and assignments.
    pub data_left: Option<u64>,
    pub data_status: Option<u8>,
    pub sms_left: Option<u64>,
    pub sms_status: Option<u8>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConnectivityView {
    pub network: Option<String>,
    pub country: Option<String>,
    pub rat: Option<String>,
    pub ip_address: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SeenQuota {
    pub total: u64,
    pub remaining: u64,
    pub expiry_date: Option<DateTime<Utc>>,
    /// The expiry was already reported for this expiry date.
    #[serde(default)]
    pub expiry_reported: bool,
}

impl SeenQuota {
    /// The assignment part (what `QuotaCommand::Assign` carries), without bookkeeping.
    pub fn same_assignment(&self, other: &SeenQuota) -> bool {
        self.total == other.total
            && self.remaining == other.remaining
            && self.expiry_date == other.expiry_date
    }
}

/// One day of usage, cumulative for the day, as the provider reports it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UsageDay {
    pub data_bytes: u64,
    pub sms_mo: u64,
    pub sms_mt: u64,
    /// Polled after the day had ended and recorded as its reference (`ReconcileUsage`).
    #[serde(default)]
    pub closed: bool,
}

impl UsageDay {
    pub fn totals(&self) -> [u64; 3] {
        [self.data_bytes, self.sms_mo, self.sms_mt]
    }
}

pub type UsageDays = BTreeMap<NaiveDate, UsageDay>;
