use chrono::{DateTime, Utc};
use serde::{Deserialize, Deserializer};

use crate::wire;

/// `GET /v1/sims/{iccid}/status`: whether the SIM is online, where, and over which radio.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct ConnectivityStatus {
    #[serde(default)]
    pub status: Option<ConnectionState>,
    #[serde(default)]
    pub location: Option<Location>,
    #[serde(default)]
    pub pdp_context: Option<PdpContext>,
    #[serde(default, deserialize_with = "services")]
    pub services: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum ConnectionState {
    Online,
    Offline,
    Attached,
    Other(String),
}

impl<'de> Deserialize<'de> for ConnectionState {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let known = [
            ("online", Self::Online),
            ("offline", Self::Offline),
            ("attached", Self::Attached),
        ];
        Ok(wire::word(&String::deserialize(d)?, &known, Self::Other))
    }
}

fn services<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    Ok(Option::<Vec<Option<String>>>::deserialize(d)?
        .unwrap_or_default()
        .into_iter()
        .flatten()
        .collect())
}

#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct Location {
    #[serde(default, deserialize_with = "wire::opt_text")]
    pub iccid: Option<String>,
    #[serde(default, deserialize_with = "wire::opt_text")]
    pub imsi: Option<String>,
    #[serde(default, deserialize_with = "wire::opt_datetime")]
    pub last_updated: Option<DateTime<Utc>>,
    #[serde(default, deserialize_with = "wire::opt_datetime")]
    pub last_updated_gprs: Option<DateTime<Utc>>,
    #[serde(default, deserialize_with = "wire::opt_text")]
    pub sgsn_number: Option<String>,
    #[serde(default, deserialize_with = "wire::opt_text")]
    pub vlr_number: Option<String>,
    #[serde(default, deserialize_with = "wire::opt_text")]
    pub msc: Option<String>,
    #[serde(default, deserialize_with = "wire::opt_text")]
    pub sgsn_ip_address: Option<String>,
    #[serde(default, deserialize_with = "wire::opt_text")]
    pub operator_id: Option<String>,
    #[serde(default)]
    pub operator: Option<Operator>,
    #[serde(default)]
    pub country: Option<Country>,
}

/// The network the SIM is attached to.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct Operator {
    #[serde(default, deserialize_with = "wire::opt_text")]
    pub id: Option<String>,
    #[serde(default, deserialize_with = "wire::opt_text")]
    pub name: Option<String>,
    #[serde(default)]
    pub country: Option<OperatorCountry>,
}

#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct OperatorCountry {
    #[serde(default, deserialize_with = "wire::opt_text")]
    pub id: Option<String>,
    #[serde(default, deserialize_with = "wire::opt_text")]
    pub name: Option<String>,
    #[serde(
        default,
        rename = "iso-code",
        alias = "iso_code",
        deserialize_with = "wire::opt_text"
    )]
    pub iso_code: Option<String>,
}

/// The country the SIM is in.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct Country {
    #[serde(default, deserialize_with = "wire::opt_text")]
    pub country_id: Option<String>,
    #[serde(default, deserialize_with = "wire::opt_text")]
    pub name: Option<String>,
    /// The international dialling code, e.g. `49`.
    #[serde(default, deserialize_with = "wire::opt_text")]
    pub country_code: Option<String>,
    #[serde(default, deserialize_with = "wire::opt_text")]
    pub mcc: Option<String>,
    #[serde(
        default,
        rename = "iso-code",
        alias = "iso_code",
        deserialize_with = "wire::opt_text"
    )]
    pub iso_code: Option<String>,
    #[serde(default, deserialize_with = "wire::opt_text")]
    pub latitude: Option<String>,
    #[serde(default, deserialize_with = "wire::opt_text")]
    pub longitude: Option<String>,
}

/// The SIM's data session, when it has one.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct PdpContext {
    #[serde(default, deserialize_with = "wire::opt_text")]
    pub pdp_context_id: Option<String>,
    #[serde(default, deserialize_with = "wire::opt_datetime")]
    pub created: Option<DateTime<Utc>>,
    #[serde(default, deserialize_with = "wire::opt_text")]
    pub mcc: Option<String>,
    #[serde(default, deserialize_with = "wire::opt_text")]
    pub mnc: Option<String>,
    #[serde(default, deserialize_with = "wire::opt_text")]
    pub operator_id: Option<String>,
    #[serde(default, deserialize_with = "wire::opt_text")]
    pub lac: Option<String>,
    #[serde(default, deserialize_with = "wire::opt_text")]
    pub ci: Option<String>,
    #[serde(default, deserialize_with = "wire::opt_text")]
    pub ue_ip_address: Option<String>,
    #[serde(default, deserialize_with = "wire::opt_text")]
    pub imeisv: Option<String>,
    #[serde(default, deserialize_with = "wire::opt_text")]
    pub duration: Option<String>,
    #[serde(default, deserialize_with = "wire::opt_text")]
    pub tariff_profile_id: Option<String>,
    #[serde(default, deserialize_with = "wire::opt_text")]
    pub ratezone_id: Option<String>,
    #[serde(default)]
    pub rat_type: Option<RatType>,
}

/// Radio access technology of the session (`2G`, `3G`, `4G`, `5G`, `NB-IoT`, …).
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct RatType {
    #[serde(default, deserialize_with = "wire::opt_text")]
    pub rat_type_id: Option<String>,
    #[serde(default, deserialize_with = "wire::opt_text")]
    pub description: Option<String>,
}
