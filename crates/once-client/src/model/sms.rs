use chrono::{DateTime, Utc};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::wire;

/// An SMS to or from a SIM, as `GET /v1/sims/{iccid}/sms` lists it.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct Sms {
    #[serde(deserialize_with = "required_id")]
    pub id: u64,
    #[serde(default, deserialize_with = "wire::opt_datetime")]
    pub submit_date: Option<DateTime<Utc>>,
    #[serde(default, deserialize_with = "wire::opt_datetime")]
    pub delivery_date: Option<DateTime<Utc>>,
    #[serde(default, deserialize_with = "wire::opt_datetime")]
    pub expiry_date: Option<DateTime<Utc>>,
    #[serde(default, deserialize_with = "wire::opt_datetime")]
    pub final_date: Option<DateTime<Utc>>,
    #[serde(default, deserialize_with = "wire::opt_datetime")]
    pub retry_date: Option<DateTime<Utc>>,
    #[serde(default, deserialize_with = "wire::opt_datetime")]
    pub last_delivery_attempt: Option<DateTime<Utc>>,
    #[serde(default, deserialize_with = "wire::opt_small_whole")]
    pub retry_count: Option<u32>,
    #[serde(default, deserialize_with = "wire::opt_text")]
    pub source_address: Option<String>,
    #[serde(default, deserialize_with = "wire::opt_text")]
    pub iccid: Option<String>,
    #[serde(default, deserialize_with = "wire::opt_text")]
    pub msisdn: Option<String>,
    #[serde(default, deserialize_with = "wire::opt_text")]
    pub imsi: Option<String>,
    #[serde(default, deserialize_with = "wire::opt_text")]
    pub msc: Option<String>,
    #[serde(default, deserialize_with = "wire::opt_small_whole")]
    pub dcs: Option<u8>,
    #[serde(default, deserialize_with = "wire::opt_text")]
    pub udh: Option<String>,
    #[serde(default, deserialize_with = "opt_payload")]
    pub payload: Option<String>,
    #[serde(default)]
    pub status: Option<SmsStatus>,
    /// Mobile-terminated (to the device) or mobile-originated (from it).
    #[serde(default, deserialize_with = "sms_type")]
    pub sms_type: SmsType,
    /// 145 international, 161 national, 208 alphanumeric.
    #[serde(default, deserialize_with = "address_type")]
    pub source_address_type: Option<u16>,
}

#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct SmsStatus {
    #[serde(default, deserialize_with = "wire::opt_small_whole")]
    pub id: Option<u32>,
    /// e.g. `DELIVERED`, `PENDING`, `FAILED`.
    #[serde(default, deserialize_with = "wire::opt_text")]
    pub description: Option<String>,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum SmsType {
    /// Mobile-terminated: sent to the device.
    Mt,
    /// Mobile-originated: sent by the device.
    Mo,
    /// Missing, or a type the documents do not list.
    #[default]
    Other,
}

fn required_id<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    wire::opt_whole(d)?.ok_or_else(|| serde::de::Error::custom("the SMS has no id"))
}

/// A payload is kept as sent, blanks included (unlike other text fields).
fn opt_payload<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Option::<String>::deserialize(d)
}

#[derive(Deserialize)]
struct TypeWire {
    #[serde(default, deserialize_with = "wire::opt_text")]
    description: Option<String>,
}

fn sms_type<'de, D: Deserializer<'de>>(d: D) -> Result<SmsType, D::Error> {
    let description = Option::<TypeWire>::deserialize(d)?.and_then(|w| w.description);
    let known = [("MT", SmsType::Mt), ("MO", SmsType::Mo)];
    Ok(description.map_or(SmsType::Other, |text| {
        wire::word(&text, &known, |_| SmsType::Other)
    }))
}

#[derive(Deserialize)]
struct AddressTypeWire {
    #[serde(default, deserialize_with = "wire::opt_small_whole")]
    id: Option<u16>,
}

fn address_type<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u16>, D::Error> {
    Ok(Option::<AddressTypeWire>::deserialize(d)?.and_then(|w| w.id))
}

/// `POST /v1/sims/{iccid}/sms`: an MT SMS to send.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SmsSubmission {
    pub source_address: String,
    pub payload: String,
    /// User data header, hex, e.g. to concatenate messages.
    pub udh: Option<String>,
    /// Data coding scheme: 0 text, 4 binary (hex payload), 8 UCS-2.
    pub dcs: Option<u8>,
    /// 145 international, 161 national, 208 alphanumeric.
    pub source_address_type: Option<u16>,
    pub expiry_date: Option<DateTime<Utc>>,
}

impl SmsSubmission {
    pub fn text(source_address: impl Into<String>, payload: impl Into<String>) -> Self {
        Self {
            source_address: source_address.into(),
            payload: payload.into(),
            udh: None,
            dcs: None,
            source_address_type: None,
            expiry_date: None,
        }
    }
}

impl Serialize for SmsSubmission {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = s.serialize_map(None)?;
        map.serialize_entry("source_address", &self.source_address)?;
        map.serialize_entry("payload", &self.payload)?;
        if let Some(udh) = &self.udh {
            map.serialize_entry("udh", udh)?;
        }
        if let Some(dcs) = self.dcs {
            map.serialize_entry("dcs", &dcs)?;
        }
        if let Some(id) = self.source_address_type {
            map.serialize_entry("source_address_type", &serde_json::json!({ "id": id }))?;
        }
        if let Some(expiry) = self.expiry_date {
            map.serialize_entry(
                "expiry_date",
                &expiry.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            )?;
        }
        map.end()
    }
}

/// The answer to `POST /v1/sims/{iccid}/sms`: where the message can be looked up.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SmsReceipt {
    pub location: Option<String>,
    /// The message's id, when the `Location` ends in one.
    pub id: Option<u64>,
}

/// The answer to `POST /v1/sims/{iccid}/topup`: the order's address.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TopUpOrder {
    pub location: Option<String>,
}
