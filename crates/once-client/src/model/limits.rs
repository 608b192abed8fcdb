//! Self-set monthly limits (account-wide at 1NCE: data, MT-SMS, MO-SMS).

use serde::{Deserialize, Serialize};

/// One limit: its id (what `POST /v1/sims/limits` takes), value and unit (`MB`, `SMS`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Limit {
    #[serde(default, deserialize_with = "crate::wire::opt_whole")]
    pub id: Option<u64>,
    #[serde(default, deserialize_with = "crate::wire::opt_text")]
    pub limit: Option<String>,
    #[serde(default, deserialize_with = "crate::wire::opt_text")]
    pub unit: Option<String>,
}

/// `Values_for_Limits`: the limits currently set (each may be missing).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Limits {
    #[serde(default)]
    pub data: Option<Limit>,
    #[serde(default, rename = "smsMt")]
    pub sms_mt: Option<Limit>,
    #[serde(default, rename = "smsMo")]
    pub sms_mo: Option<Limit>,
}

/// `SetLimitsRequest`: the ids to set; a missing one leaves that limit as it is.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SetLimits {
    #[serde(rename = "dataLimitId", skip_serializing_if = "Option::is_none")]
    pub data_limit_id: Option<u64>,
    #[serde(rename = "smsMtLimitId", skip_serializing_if = "Option::is_none")]
    pub sms_mt_limit_id: Option<u64>,
    #[serde(rename = "smsMoLimitId", skip_serializing_if = "Option::is_none")]
    pub sms_mo_limit_id: Option<u64>,
}

/// The services limits are selected for (`GET /v1/sims/{service}/limits`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum LimitService {
    #[serde(rename = "data")]
    Data,
    #[serde(rename = "smsMO")]
    SmsMo,
    #[serde(rename = "smsMT")]
    SmsMt,
}

impl LimitService {
    pub fn as_str(self) -> &'static str {
        match self {
            LimitService::Data => "data",
            LimitService::SmsMo => "smsMO",
            LimitService::SmsMt => "smsMT",
        }
    }
}
