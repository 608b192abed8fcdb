use chrono::{DateTime, Utc};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::wire;

/// A SIM as `GET /v1/sims` and `GET /v1/sims/{iccid}` describe it. Only the ICCID is required;
/// everything else may be missing or `null` at the provider.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct Sim {
    /// 19 digits, without the Luhn digit.
    #[serde(deserialize_with = "wire::required_text")]
    pub iccid: String,
    #[serde(default, deserialize_with = "wire::opt_text")]
    pub iccid_with_luhn: Option<String>,
    #[serde(default, deserialize_with = "wire::opt_text")]
    pub imsi: Option<String>,
    #[serde(default, deserialize_with = "wire::opt_text")]
    pub imsi_2: Option<String>,
    #[serde(default, deserialize_with = "wire::opt_text")]
    pub current_imsi: Option<String>,
    #[serde(default, deserialize_with = "wire::opt_text")]
    pub msisdn: Option<String>,
    #[serde(default, deserialize_with = "wire::opt_text")]
    pub imei: Option<String>,
    #[serde(default, deserialize_with = "wire::opt_bool")]
    pub imei_lock: Option<bool>,
    #[serde(default)]
    pub status: Option<SimState>,
    #[serde(default, deserialize_with = "wire::opt_datetime")]
    pub activation_date: Option<DateTime<Utc>>,
    #[serde(default, deserialize_with = "wire::opt_text")]
    pub ip_address: Option<String>,
    /// The SIM's data quota (`current_quota`, MB at the provider) in bytes.
    #[serde(default, rename = "current_quota", deserialize_with = "wire::opt_mb_bytes")]
    pub current_quota_bytes: Option<u64>,
    #[serde(default)]
    pub quota_status: Option<QuotaStatus>,
    /// The SIM's SMS quota (`current_quota_SMS`), in messages.
    #[serde(default, rename = "current_quota_SMS", deserialize_with = "wire::opt_whole")]
    pub current_quota_sms: Option<u64>,
    #[serde(default, rename = "quota_status_SMS")]
    pub quota_status_sms: Option<QuotaStatus>,
    #[serde(default, deserialize_with = "wire::opt_text")]
    pub label: Option<String>,
}

/// The provider's SIM status. The documents list `Enabled` and `Disabled`; anything else is
/// kept as written rather than refused.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum SimState {
    Enabled,
    Disabled,
    Other(String),
}

impl SimState {
    pub fn as_str(&self) -> &str {
        match self {
            Self::Enabled => "Enabled",
            Self::Disabled => "Disabled",
            Self::Other(other) => other,
        }
    }
}

impl<'de> Deserialize<'de> for SimState {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let known = [("enabled", Self::Enabled), ("disabled", Self::Disabled)];
        Ok(wire::word(&String::deserialize(d)?, &known, Self::Other))
    }
}

impl Serialize for SimState {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// How much of a quota is left, in the provider's three steps.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct QuotaStatus {
    /// 0: more than 20 % left, 1: less than 20 %, 2: nothing left.
    #[serde(default, deserialize_with = "wire::opt_small_whole")]
    pub id: Option<u8>,
    #[serde(default, deserialize_with = "wire::opt_text")]
    pub description: Option<String>,
    #[serde(default, deserialize_with = "wire::opt_datetime")]
    pub threshold_reached_date: Option<DateTime<Utc>>,
    #[serde(default, deserialize_with = "wire::opt_datetime")]
    pub quota_exceeded_date: Option<DateTime<Utc>>,
}

/// One page of `GET /v1/sims`, with the paging the provider sends in headers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SimPage {
    pub sims: Vec<Sim>,
    pub total_count: u64,
    pub total_pages: u32,
    pub current_page: u32,
    pub page_size: u32,
}

/// `PUT /v1/sims/{iccid}`: what to change; `None` leaves a field out of the request.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SimUpdate {
    pub iccid: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub imei_lock: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<SimState>,
}
