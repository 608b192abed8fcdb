//! Lenient readers for the provider's JSON: the documents promise strings where the live API
//! sometimes sends numbers, `null` or nothing at all, and two date formats are in use.

use std::str::FromStr;

use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use rust_decimal::{Decimal, RoundingStrategy};
use serde::de::Error as _;
use serde::{Deserialize, Deserializer};
use serde_json::value::RawValue;
use serde_json::Value;

/// Bytes in one MB as the provider counts them (decimal megabytes).
const BYTES_PER_MB: u32 = 1_000_000;

/// A decimal read from the JSON text itself (number or string), so `0.002803` stays exact.
/// `null`, an empty string and a missing field are `None`.
pub fn decimal_from_raw(raw: &RawValue) -> Result<Option<Decimal>, String> {
    let text = raw.get().trim();
    let number = if text == "null" {
        return Ok(None);
    } else if text.starts_with('"') {
        let inner: String = serde_json::from_str(text).map_err(|e| e.to_string())?;
        let inner = inner.trim().to_owned();
        if inner.is_empty() {
            return Ok(None);
        }
        inner
    } else {
        text.to_owned()
    };
    parse_decimal(&number).map(Some)
}

fn parse_decimal(text: &str) -> Result<Decimal, String> {
    if text.contains(['e', 'E']) {
        Decimal::from_scientific(text).map_err(|e| format!("{text:?} is not a number: {e}"))
    } else {
        Decimal::from_str(text).map_err(|e| format!("{text:?} is not a number: {e}"))
    }
}

/// Megabytes (decimal) to whole bytes, exactly; only a fraction of a byte is rounded (half up).
pub fn mb_to_bytes(mb: Decimal) -> Result<u64, String> {
    if mb.is_sign_negative() && !mb.is_zero() {
        return Err(format!("negative volume {mb} MB"));
    }
    let bytes = mb
        .checked_mul(Decimal::from(BYTES_PER_MB))
        .ok_or_else(|| format!("volume {mb} MB is out of range"))?
        .round_dp_with_strategy(0, RoundingStrategy::MidpointAwayFromZero);
    u64::try_from(bytes).map_err(|_| format!("volume {mb} MB is out of range"))
}

/// A count (SMS, ids): a non-negative whole number, possibly written as a string.
pub fn whole(value: Decimal, what: &str) -> Result<u64, String> {
    if value.is_sign_negative() && !value.is_zero() {
        return Err(format!("negative {what} {value}"));
    }
    if !value.fract().is_zero() {
        return Err(format!("{what} {value} is not a whole number"));
    }
    u64::try_from(value).map_err(|_| format!("{what} {value} is out of range"))
}

/// A decimal field, as [`decimal_from_raw`] reads it.
pub(crate) fn opt_decimal<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Decimal>, D::Error> {
    match Option::<Box<RawValue>>::deserialize(d)? {
        None => Ok(None),
        Some(raw) => decimal_from_raw(&raw).map_err(D::Error::custom),
    }
}

/// A decimal field converted by `convert`; a missing one stays `None`.
fn converted<'de, D: Deserializer<'de>, T>(
    d: D,
    convert: impl FnOnce(Decimal) -> Result<T, String>,
) -> Result<Option<T>, D::Error> {
    opt_decimal(d)?.map(convert).transpose().map_err(D::Error::custom)
}

/// Data volume in MB (number or decimal string) → bytes.
pub(crate) fn opt_mb_bytes<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    converted(d, mb_to_bytes)
}

/// A data volume in MB that counts as zero when the provider leaves it out.
pub(crate) fn mb_bytes_or_zero<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    Ok(opt_mb_bytes(d)?.unwrap_or(0))
}

/// A whole number, as number or string.
pub(crate) fn opt_whole<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    converted(d, |v| whole(v, "number"))
}

pub(crate) fn whole_or_zero<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    Ok(opt_whole(d)?.unwrap_or(0))
}

/// A whole number that must fit the field's smaller integer type (`u32`, `u16`, `u8`).
pub(crate) fn opt_small_whole<'de, D: Deserializer<'de>, T: TryFrom<u64>>(
    d: D,
) -> Result<Option<T>, D::Error> {
    opt_whole(d)?
        .map(|v| T::try_from(v).map_err(|_| D::Error::custom(format!("{v} is out of range"))))
        .transpose()
}

/// The value `text` is a word of, compared trimmed and ignoring ASCII case; any other text is
/// kept (trimmed) through `other`. For the provider's enumerations, which it may extend.
pub(crate) fn word<T: Clone>(text: &str, known: &[(&str, T)], other: impl FnOnce(String) -> T) -> T {
    let text = text.trim();
    known
        .iter()
        .find(|(word, _)| text.eq_ignore_ascii_case(word))
        .map(|(_, value)| value.clone())
        .unwrap_or_else(|| other(text.to_owned()))
}

/// Text that may come as a string, a number or a boolean; `null` and `""` are `None`.
pub(crate) fn opt_text<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    match Option::<Value>::deserialize(d)? {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.trim().is_empty() => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(Value::Number(n)) => Ok(Some(n.to_string())),
        Some(Value::Bool(b)) => Ok(Some(b.to_string())),
        Some(other) => Err(D::Error::custom(format!("expected text, found {other}"))),
    }
}

/// Text that must be there (as a string or a number).
pub(crate) fn required_text<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    opt_text(d)?.ok_or_else(|| D::Error::custom("a required text is null or empty"))
}

/// A flag as `true`/`false` or the strings `"true"`/`"false"`.
pub(crate) fn opt_bool<'de, D: Deserializer<'de>>(d: D) -> Result<Option<bool>, D::Error> {
    match Option::<Value>::deserialize(d)? {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(b)),
        Some(Value::String(s)) if s.eq_ignore_ascii_case("true") => Ok(Some(true)),
        Some(Value::String(s)) if s.eq_ignore_ascii_case("false") => Ok(Some(false)),
        Some(Value::String(s)) if s.trim().is_empty() => Ok(None),
        Some(other) => Err(D::Error::custom(format!("expected true or false, found {other}"))),
    }
}

pub(crate) fn opt_datetime<'de, D: Deserializer<'de>>(d: D) -> Result<Option<DateTime<Utc>>, D::Error> {
    match opt_text(d)? {
        None => Ok(None),
        Some(text) => parse_datetime(&text).map(Some).map_err(D::Error::custom),
    }
}

/// The provider writes `2018-03-09T07:59:09.000+0000` in some places and RFC 3339 in others;
/// a bare date means midnight UTC.
pub fn parse_datetime(text: &str) -> Result<DateTime<Utc>, String> {
    let text = text.trim();
    if let Ok(at) = DateTime::parse_from_rfc3339(text) {
        return Ok(at.with_timezone(&Utc));
    }
    for format in ["%Y-%m-%dT%H:%M:%S%.f%z", "%Y-%m-%d %H:%M:%S%.f%z"] {
        if let Ok(at) = DateTime::parse_from_str(text, format) {
            return Ok(at.with_timezone(&Utc));
        }
    }
    for format in ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M:%S%.f"] {
        if let Ok(at) = NaiveDateTime::parse_from_str(text, format) {
            return Ok(at.and_utc());
        }
    }
    if let Ok(date) = NaiveDate::parse_from_str(text, "%Y-%m-%d") {
        return Ok(date.and_time(chrono::NaiveTime::MIN).and_utc());
    }
    Err(format!("{text:?} is not a date and time"))
}

/// A day, written either as `2021-06-30` or as the midnight timestamp `2021-06-30T00:00:00.000Z`.
/// The calendar day is taken as written: the provider's usage days are its own, not shifted.
pub fn parse_day(text: &str) -> Result<NaiveDate, String> {
    let text = text.trim();
    text.get(..10)
        .and_then(|day| NaiveDate::parse_from_str(day, "%Y-%m-%d").ok())
        .filter(|_| text.len() == 10 || text.as_bytes().get(10).is_some_and(|b| *b == b'T' || *b == b' '))
        .ok_or_else(|| format!("{text:?} is not a date"))
}

/// The start of a body, for error messages: enough to tell JSON from an HTML gateway page.
pub(crate) fn excerpt(body: &[u8]) -> String {
    const LIMIT: usize = 200;
    let text = String::from_utf8_lossy(body);
    let trimmed = text.trim();
    match trimmed.char_indices().nth(LIMIT) {
        Some((cut, _)) => format!("{}…", &trimmed[..cut]),
        None => trimmed.to_owned(),
    }
}
