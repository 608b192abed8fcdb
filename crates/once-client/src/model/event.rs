use chrono::{DateTime, Utc};
use serde::Deserialize;

use crate::wire;

/// A diagnostic event of a SIM. The documents promise only the timestamp and the type.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct SimEvent {
    #[serde(default, deserialize_with = "wire::opt_whole")]
    pub id: Option<u64>,
    #[serde(default, deserialize_with = "wire::opt_datetime")]
    pub timestamp: Option<DateTime<Utc>>,
    /// e.g. "Status of SIM changed from 'Issued' to 'Activated'".
    #[serde(default, deserialize_with = "wire::opt_text")]
    pub event_type: Option<String>,
    #[serde(default, deserialize_with = "wire::opt_text")]
    pub iccid: Option<String>,
    #[serde(default, deserialize_with = "wire::opt_text")]
    pub imei: Option<String>,
    #[serde(default, deserialize_with = "wire::opt_text")]
    pub imsi: Option<String>,
    #[serde(default, deserialize_with = "wire::opt_text")]
    pub country: Option<String>,
    #[serde(default, deserialize_with = "wire::opt_text")]
    pub operator: Option<String>,
    #[serde(default, deserialize_with = "wire::opt_text")]
    pub mcc: Option<String>,
    #[serde(default, deserialize_with = "wire::opt_text")]
    pub mnc: Option<String>,
    #[serde(default, deserialize_with = "wire::opt_bool")]
    pub alert: Option<bool>,
    #[serde(default, deserialize_with = "wire::opt_text")]
    pub event_severity: Option<String>,
}

/// One page of `GET /v1/sims/{iccid}/events`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SimEventPage {
    pub events: Vec<SimEvent>,
    pub total_events: u64,
    pub total_pages: u32,
}

#[derive(Deserialize)]
pub(crate) struct EventAnswer {
    #[serde(default)]
    pub events: Option<Vec<SimEvent>>,
    #[serde(default, rename = "totalEvents", deserialize_with = "wire::opt_whole")]
    pub total_events: Option<u64>,
    #[serde(default, rename = "totalPages", deserialize_with = "wire::opt_small_whole")]
    pub total_pages: Option<u32>,
}
