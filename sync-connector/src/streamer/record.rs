//! The Data Streamer's records, read tolerantly (`/work/shared/1nce-data-streamer.md`): ids and
//! volumes as numbers or strings (volumes read from the JSON text, never through `f64`),
//! optional or `null` sub-objects, `detail` as object, string or `null`, unknown fields and
//! event types, timestamps with or without fraction and zone. What a record means for the
//! platform is decided here, once, and stored normalised in the inbox; the applier only turns
//! it into commands.

use chrono::{DateTime, NaiveDate, Utc};
use domain::QuotaKind;
use once_client::wire::{mb_to_bytes, whole};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::Value;

use super::fields::{integer, object, opt_time, sim_iccid, text, volume, whole_number};

/// Which stream a record came from; the record ids are unique within a stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Stream {
    Usage,
    Events,
    /// Events read from the Management API (`GET /v1/sims/{iccid}/events`) by polling, when
    /// the streamer is off; ids of their own (`poll::events`).
    ApiEvents,
}

impl Stream {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Usage => "usage",
            Self::Events => "events",
            Self::ApiEvents => "api_events",
        }
    }
}

/// A well-formed record, normalised.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    pub id: i64,
    pub stream: Stream,
    /// The SIM it is about (19 digits); events about a whole service profile name none.
    pub iccid: Option<String>,
    /// When it happened: a usage record's end (else start), an event's timestamp.
    pub occurred_at: DateTime<Utc>,
    pub meaning: Meaning,
}

/// What a record means for the platform.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Meaning {
    /// Data used on `day` (UTC), in bytes (1 MB = 1,000,000 bytes, as the provider counts).
    Data { day: NaiveDate, bytes: u64 },
    /// SMS on `day`: MO counted in `tx`, MT in `rx`.
    Sms { day: NaiveDate, mo: u64, mt: u64 },
    /// A traffic type the platform does not count.
    OtherUsage { traffic_type: Option<i64> },
    /// A location update (types 1, 2): the visited network and its country.
    Location {
        network: Option<String>,
        country: Option<String>,
    },
    /// A PDP context created or updated (3, 4).
    Session {
        network: Option<String>,
        country: Option<String>,
        rat: Option<String>,
        ip_address: Option<String>,
    },
    /// A PDP context deleted (5): no radio access type any more.
    SessionClosed,
    /// SIM activation (8), suspension (9), deletion (10).
    Status { status: StatusChange },
    /// Quota threshold reached (18, 20), at `percentage` when the record says.
    QuotaThreshold {
        quota: QuotaKind,
        percentage: Option<u8>,
    },
    /// Quota used up (19, 21).
    QuotaUsedUp { quota: QuotaKind },
    /// Quota assigned (56, 58): `detail` is not parseable JSON, so the values are polled.
    QuotaAssigned { quota: QuotaKind },
    /// Data quota expired (60).
    QuotaExpired { quota: QuotaKind },
    /// Any other event type (kept, changes nothing the platform keeps).
    OtherEvent { event_type: Option<i64> },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StatusChange {
    Activated,
    Suspended,
    Deleted,
}

impl Meaning {
    /// The record's type for metrics and the inbox (`kind` column): a small, fixed set.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Data { .. } => "data",
            Self::Sms { .. } => "sms",
            Self::OtherUsage { .. } => "usage_other",
            Self::Location { .. } | Self::Session { .. } | Self::SessionClosed => "connectivity",
            Self::Status { .. } => "status",
            Self::QuotaThreshold { .. }
            | Self::QuotaUsedUp { .. }
            | Self::QuotaAssigned { .. }
            | Self::QuotaExpired { .. } => "quota",
            Self::OtherEvent { .. } => "event_other",
        }
    }
}

/// Why a record was refused at the door, with whatever id could be read from it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Rejection {
    pub index: usize,
    pub id: Option<i64>,
    pub reason: String,
}

/// The fields the receiver looks at; everything else is ignored (1NCE may add fields).
#[derive(Deserialize)]
struct Fields<'a> {
    #[serde(borrow, default)]
    id: Option<&'a RawValue>,
    #[serde(borrow, default)]
    traffic_type: Option<&'a RawValue>,
    #[serde(borrow, default)]
    volume: Option<&'a RawValue>,
    #[serde(borrow, default)]
    start_timestamp: Option<&'a RawValue>,
    #[serde(borrow, default)]
    end_timestamp: Option<&'a RawValue>,
    #[serde(borrow, default)]
    sim: Option<&'a RawValue>,
    #[serde(borrow, default)]
    event_type: Option<&'a RawValue>,
    #[serde(borrow, default)]
    timestamp: Option<&'a RawValue>,
    #[serde(borrow, default)]
    detail: Option<&'a RawValue>,
}

/// Reads one element of a batch.
pub fn parse(index: usize, raw: &RawValue) -> Result<Record, Rejection> {
    let reject = |id: Option<i64>, reason: String| Rejection { index, id, reason };
    // serde would read a struct from an array too ([1] as {"id": 1}).
    if !raw.get().trim_start().starts_with('{') {
        return Err(reject(None, "not a record object".into()));
    }
    let fields: Fields =
        serde_json::from_str(raw.get()).map_err(|e| reject(None, format!("not a record object: {e}")))?;
    let id = match fields.id.map(whole_number).transpose() {
        Ok(Some(id)) => id,
        Ok(None) => return Err(reject(None, "no `id`".into())),
        Err(reason) => return Err(reject(None, format!("`id`: {reason}"))),
    };
    let read = if fields.traffic_type.is_some() || fields.volume.is_some() || fields.start_timestamp.is_some()
    {
        usage(id, &fields)
    } else if fields.event_type.is_some() || fields.timestamp.is_some() {
        event(id, &fields)
    } else {
        Err(
            "neither a usage record (traffic_type, volume) nor an event record (event_type, timestamp)"
                .into(),
        )
    };
    read.map_err(|reason| reject(Some(id), reason))
}

fn usage(id: i64, fields: &Fields) -> Result<Record, String> {
    let iccid = sim_iccid(fields.sim)?.ok_or("a usage record without `sim.iccid`")?;
    let start = opt_time(fields.start_timestamp).map_err(|e| format!("`start_timestamp`: {e}"))?;
    let end = opt_time(fields.end_timestamp).map_err(|e| format!("`end_timestamp`: {e}"))?;
    let occurred_at = end.or(start).ok_or("a usage record without a timestamp")?;
    let day = occurred_at.date_naive();
    let traffic = object(fields.traffic_type).map_err(|e| format!("`traffic_type`: {e}"))?;
    let traffic_id = traffic.as_ref().and_then(|t| integer(t.get("id")));
    let traffic_name = traffic
        .as_ref()
        .and_then(|t| text(t.get("description")).or_else(|| text(t.get("name"))))
        .map(|n| n.to_ascii_lowercase());
    let volume = volume(fields.volume)?;
    let meaning = match (traffic_id, traffic_name.as_deref()) {
        (Some(5), _) | (None, Some("data")) => {
            let bytes = match volume.total {
                Some(total) => mb_to_bytes(total)?,
                None => mb_to_bytes(volume.tx.unwrap_or_default())?
                    .checked_add(mb_to_bytes(volume.rx.unwrap_or_default())?)
                    .ok_or("volume out of range")?,
            };
            Meaning::Data { day, bytes }
        }
        (Some(6), _) | (None, Some("sms")) => {
            if volume.tx.is_none() && volume.rx.is_none() && volume.total.is_some_and(|t| !t.is_zero()) {
                return Err("an SMS record without `volume.tx`/`volume.rx` (MO/MT cannot be told)".into());
            }
            let count = |v: Option<rust_decimal::Decimal>| whole(v.unwrap_or_default(), "SMS count");
            Meaning::Sms {
                day,
                mo: count(volume.tx)?,
                mt: count(volume.rx)?,
            }
        }
        (None, None) => return Err("a usage record without `traffic_type`".into()),
        (id, _) => Meaning::OtherUsage { traffic_type: id },
    };
    Ok(Record {
        id,
        stream: Stream::Usage,
        iccid: Some(iccid),
        occurred_at,
        meaning,
    })
}

fn event(id: i64, fields: &Fields) -> Result<Record, String> {
    let occurred_at = opt_time(fields.timestamp)
        .map_err(|e| format!("`timestamp`: {e}"))?
        .ok_or("an event record without `timestamp`")?;
    let iccid = sim_iccid(fields.sim)?;
    let event_type = object(fields.event_type)
        .map_err(|e| format!("`event_type`: {e}"))?
        .and_then(|t| integer(t.get("id")))
        .ok_or("an event record without `event_type.id`")?;
    // `detail` is an object, a JSON-encoded string (often not valid JSON) or null.
    let detail = match fields.detail.map(|d| serde_json::from_str::<Value>(d.get())) {
        Some(Ok(Value::String(inner))) => serde_json::from_str::<Value>(&inner).unwrap_or(Value::Null),
        Some(Ok(value)) => value,
        _ => Value::Null,
    };
    let network = || text(detail.get("name"));
    let country = || {
        detail
            .get("country")
            .and_then(|c| text(c.get("name")).or_else(|| text(c.get("iso_code"))))
    };
    let quota_kind = |data: bool| if data { QuotaKind::Data } else { QuotaKind::Sms };
    let meaning = match event_type {
        1 | 2 => Meaning::Location {
            network: network(),
            country: country(),
        },
        3 | 4 => {
            let context = detail.get("pdp_context");
            Meaning::Session {
                network: network(),
                country: country(),
                rat: context
                    .and_then(|c| integer(c.get("rat_type")))
                    .and_then(rat_name),
                ip_address: context.and_then(|c| text(c.get("ue_ip_address"))),
            }
        }
        5 => Meaning::SessionClosed,
        8 => Meaning::Status {
            status: StatusChange::Activated,
        },
        9 => Meaning::Status {
            status: StatusChange::Suspended,
        },
        10 => Meaning::Status {
            status: StatusChange::Deleted,
        },
        18 | 20 => Meaning::QuotaThreshold {
            quota: quota_kind(event_type == 18),
            percentage: detail
                .get("quota")
                .and_then(|q| integer(q.get("threshold_percentage")))
                .and_then(|p| u8::try_from(p).ok())
                .filter(|p| *p <= 100),
        },
        19 | 21 => Meaning::QuotaUsedUp {
            quota: quota_kind(event_type == 19),
        },
        56 | 58 => Meaning::QuotaAssigned {
            quota: quota_kind(event_type == 56),
        },
        60 => Meaning::QuotaExpired {
            quota: QuotaKind::Data,
        },
        other => Meaning::OtherEvent {
            event_type: Some(other),
        },
    };
    Ok(Record {
        id,
        stream: Stream::Events,
        iccid,
        occurred_at,
        meaning,
    })
}

/// The radio access type as the connectivity API names it (`2G`, `3G`, `4G`, `5G`, `NB-IoT`),
/// so polling and streaming record the same words. Unknown ids leave the RAT unknown.
fn rat_name(id: i64) -> Option<String> {
    let name = match id {
        1 | 5 => "3G",
        2 => "2G",
        6 => "4G",
        8 => "NB-IoT",
        9 => "LTE-M",
        10 => "5G",
        _ => return None,
    };
    Some(name.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(json: &str) -> Result<Record, Rejection> {
        let raw: Box<RawValue> = serde_json::from_str(json).unwrap();
        parse(0, &raw)
    }

    const ICCID: &str = "8988228066605682328";

    #[test]
    fn data_volumes_are_exact_bytes_from_numbers_and_strings() {
        let record = read(&format!(
            r#"{{"id":839610411991272,"traffic_type":{{"id":5,"description":"Data"}},
            "start_timestamp":"2021-08-09T12:59:05Z","end_timestamp":"2021-08-09T13:14:05Z",
            "volume":{{"total":0.001176,"tx":"0.001","rx":0.000176}},"sim":{{"iccid":"{ICCID}"}},"extra":[1]}}"#
        ))
        .unwrap();
        assert_eq!(record.id, 839_610_411_991_272);
        assert_eq!(record.iccid.as_deref(), Some(ICCID));
        let day = NaiveDate::from_ymd_opt(2021, 8, 9).unwrap();
        assert_eq!(record.meaning, Meaning::Data { day, bytes: 1176 });
        // 0.1 + 0.2 in f64 is not 0.3; here it is exactly 300,000 bytes.
        let record = read(&format!(
            r#"{{"id":"7","traffic_type":{{"id":5}},"end_timestamp":"2021-08-09 13:14:05",
            "volume":{{"tx":0.1,"rx":0.2}},"sim":{{"iccid":"{ICCID}"}}}}"#
        ))
        .unwrap();
        assert_eq!(record.meaning, Meaning::Data { day, bytes: 300_000 });
    }

    #[test]
    fn sms_counts_mo_in_tx_and_mt_in_rx() {
        let record = read(&format!(
            r#"{{"id":1,"traffic_type":{{"id":6,"description":"SMS"}},"start_timestamp":"2021-08-09T12:59:05Z",
            "volume":{{"total":1.0,"tx":0.0,"rx":"1.0"}},"sim":{{"iccid":"{ICCID}"}}}}"#
        ))
        .unwrap();
        let day = NaiveDate::from_ymd_opt(2021, 8, 9).unwrap();
        assert_eq!(record.meaning, Meaning::Sms { day, mo: 0, mt: 1 });
    }

    #[test]
    fn events_tolerate_null_parts_string_details_and_unknown_types() {
        let pdp = read(&format!(
            r#"{{"id":2,"timestamp":"2024-12-13T12:49:57.000Z","event_type":{{"id":3,"description":"Create PDP Context"}},
            "sim":{{"iccid":"{ICCID}"}},"imsi":null,"endpoint":null,"user":null,
            "detail":{{"id":2,"name":"Telekom","country":{{"name":"Germany","iso_code":"de"}},
            "pdp_context":{{"rat_type":6,"ue_ip_address":"10.0.0.1","gtp_version":1}}}}}}"#
        ))
        .unwrap();
        assert_eq!(
            pdp.meaning,
            Meaning::Session {
                network: Some("Telekom".into()),
                country: Some("Germany".into()),
                rat: Some("4G".into()),
                ip_address: Some("10.0.0.1".into()),
            }
        );
        let assigned = read(
            r#"{"id":3,"timestamp":"2019-01-21T09:36:17Z","event_type":{"id":56},"sim":null,
            "detail":"{\"volume\":500,\"expiry_date\":2022-01-01}"}"#,
        )
        .unwrap();
        assert_eq!(
            assigned.meaning,
            Meaning::QuotaAssigned {
                quota: QuotaKind::Data
            }
        );
        assert_eq!(assigned.iccid, None);
        let unknown =
            read(r#"{"id":4,"timestamp":1700000000,"event_type":{"id":"77"},"detail":null}"#).unwrap();
        assert_eq!(unknown.meaning, Meaning::OtherEvent { event_type: Some(77) });
        assert_eq!(unknown.occurred_at.timestamp(), 1_700_000_000);
    }

    #[test]
    fn malformed_records_are_rejected_with_a_reason_and_their_id() {
        for (json, id, words) in [
            (r#"[1]"#, None, "not a record object"),
            (r#"{"traffic_type":{"id":5}}"#, None, "no `id`"),
            (r#"{"id":1.5,"traffic_type":{"id":5}}"#, None, "whole"),
            (r#"{"id":9,"hello":1}"#, Some(9), "neither"),
            (
                r#"{"id":9,"timestamp":"yesterday","event_type":{"id":1}}"#,
                Some(9),
                "timestamp",
            ),
            (
                r#"{"id":9,"traffic_type":{"id":5},"end_timestamp":"2021-08-09T12:59:05Z","volume":{"total":"x"},"sim":{"iccid":"8988228066605682328"}}"#,
                Some(9),
                "volume.total",
            ),
            (
                r#"{"id":9,"traffic_type":{"id":5},"end_timestamp":"2021-08-09T12:59:05Z","volume":{"total":1},"sim":{"iccid":"123"}}"#,
                Some(9),
                "sim.iccid",
            ),
        ] {
            let rejection = read(json).unwrap_err();
            assert_eq!(rejection.id, id, "{json}");
            assert!(rejection.reason.contains(words), "{json}: {}", rejection.reason);
        }
    }
}
