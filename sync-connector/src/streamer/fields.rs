//! Readers for the parts of a Data Streamer record: sub-objects that may be missing or `null`,
//! numbers that may be strings, volumes read from the JSON text, timestamps in any form.

use chrono::{DateTime, Utc};
use domain::Iccid;
use once_client::wire::{decimal_from_raw, parse_datetime, whole};
use serde_json::value::RawValue;
use serde_json::Value;

#[derive(Default)]
pub(super) struct Volume {
    pub total: Option<rust_decimal::Decimal>,
    pub tx: Option<rust_decimal::Decimal>,
    pub rx: Option<rust_decimal::Decimal>,
}

pub(super) fn volume(raw: Option<&RawValue>) -> Result<Volume, String> {
    let Some(raw) = raw else {
        return Err("a usage record without `volume`".into());
    };
    let parts: std::collections::HashMap<&str, Option<&RawValue>> =
        serde_json::from_str(raw.get()).map_err(|e| format!("`volume` is not an object: {e}"))?;
    let read = |name: &str| -> Result<Option<rust_decimal::Decimal>, String> {
        match parts.get(name).copied().flatten() {
            None => Ok(None),
            Some(raw) => {
                let value = decimal_from_raw(raw).map_err(|e| format!("`volume.{name}`: {e}"))?;
                if value.is_some_and(|v| v.is_sign_negative() && !v.is_zero()) {
                    return Err(format!("`volume.{name}` is negative"));
                }
                Ok(value)
            }
        }
    };
    let volume = Volume {
        total: read("total")?,
        tx: read("tx")?,
        rx: read("rx")?,
    };
    if volume.total.is_none() && volume.tx.is_none() && volume.rx.is_none() {
        return Err("`volume` has none of total, tx, rx".into());
    }
    Ok(volume)
}

/// `sim.iccid`, checked and normalised to 19 digits; `None` when there is no `sim` or no ICCID.
pub(super) fn sim_iccid(raw: Option<&RawValue>) -> Result<Option<String>, String> {
    let sim = object(raw).map_err(|e| format!("`sim`: {e}"))?;
    match sim.as_ref().and_then(|s| text(s.get("iccid"))) {
        None => Ok(None),
        Some(iccid) => Iccid::parse(&iccid)
            .map(|i| Some(i.to_string()))
            .map_err(|e| format!("`sim.iccid`: {e}")),
    }
}

/// A sub-object; `null` or absent is `None`, anything but an object is an error.
pub(super) fn object(raw: Option<&RawValue>) -> Result<Option<Value>, String> {
    match raw.map(|r| serde_json::from_str::<Value>(r.get())) {
        None | Some(Ok(Value::Null)) => Ok(None),
        Some(Ok(value @ Value::Object(_))) => Ok(Some(value)),
        Some(Ok(other)) => Err(format!("expected an object, found {other}")),
        Some(Err(e)) => Err(e.to_string()),
    }
}

/// A whole number written as a number or a string.
pub(super) fn whole_number(raw: &RawValue) -> Result<i64, String> {
    let value = decimal_from_raw(raw)?.ok_or("null")?;
    let value = whole(value, "id")?;
    i64::try_from(value).map_err(|_| format!("{value} is out of range"))
}

pub(super) fn integer(value: Option<&Value>) -> Option<i64> {
    match value? {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

pub(super) fn text(value: Option<&Value>) -> Option<String> {
    match value? {
        Value::String(s) if !s.trim().is_empty() => Some(s.trim().to_owned()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// A timestamp as text in any of the provider's forms, or as Unix seconds or milliseconds.
pub(super) fn opt_time(raw: Option<&RawValue>) -> Result<Option<DateTime<Utc>>, String> {
    let Some(raw) = raw else { return Ok(None) };
    match serde_json::from_str::<Value>(raw.get()).map_err(|e| e.to_string())? {
        Value::Null => Ok(None),
        Value::String(s) if s.trim().is_empty() => Ok(None),
        Value::String(s) => parse_datetime(&s).map(Some),
        Value::Number(n) => {
            let n = n.as_i64().ok_or_else(|| format!("{n} is not a Unix time"))?;
            let at = if n.abs() >= 100_000_000_000 {
                DateTime::from_timestamp_millis(n)
            } else {
                DateTime::from_timestamp(n, 0)
            };
            at.map(Some).ok_or_else(|| format!("{n} is out of range"))
        }
        other => Err(format!("expected a timestamp, found {other}")),
    }
}
