use chrono::NaiveDate;
use serde::{Deserialize, Deserializer};

use crate::wire;

/// One day of `GET /v1/sims/{iccid}/usage`.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct DailyUsage {
    #[serde(deserialize_with = "day")]
    pub date: NaiveDate,
    /// A day the provider reports without a data (or SMS) part had none.
    #[serde(default, deserialize_with = "or_default")]
    pub data: DataUsage,
    #[serde(default, deserialize_with = "or_default")]
    pub sms: SmsUsage,
}

/// Data volume of one day, in bytes (the provider's decimal MB strings, converted exactly).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
pub struct DataUsage {
    #[serde(default, rename = "volume", deserialize_with = "wire::mb_bytes_or_zero")]
    pub volume_bytes: u64,
    /// Downstream, received by the SIM.
    #[serde(default, rename = "volume_rx", deserialize_with = "wire::mb_bytes_or_zero")]
    pub rx_bytes: u64,
    /// Upstream, sent by the SIM.
    #[serde(default, rename = "volume_tx", deserialize_with = "wire::mb_bytes_or_zero")]
    pub tx_bytes: u64,
}

/// SMS count of one day.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
pub struct SmsUsage {
    #[serde(default, deserialize_with = "wire::whole_or_zero")]
    pub volume: u64,
    /// Mobile-originated: sent by the device, received by the network.
    #[serde(default, deserialize_with = "wire::whole_or_zero")]
    pub volume_rx: u64,
    /// Mobile-terminated: sent to the device.
    #[serde(default, deserialize_with = "wire::whole_or_zero")]
    pub volume_tx: u64,
}

fn day<'de, D: Deserializer<'de>>(d: D) -> Result<NaiveDate, D::Error> {
    let text = String::deserialize(d)?;
    wire::parse_day(&text).map_err(serde::de::Error::custom)
}

fn or_default<'de, D: Deserializer<'de>, T: Deserialize<'de> + Default>(d: D) -> Result<T, D::Error> {
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

/// The body of the usage answer.
#[derive(Deserialize)]
pub(crate) struct UsageAnswer {
    #[serde(default, deserialize_with = "or_default")]
    pub stats: Vec<DailyUsage>,
}
