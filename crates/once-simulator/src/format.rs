//! Identifier and value formats as 1NCE writes them: ICCIDs with and without the Luhn digit,
//! MB as exact decimal strings, and its two timestamp styles.

use chrono::{DateTime, Utc};
use serde_json::Value;

pub const BYTES_PER_MB: u64 = 1_000_000;

/// A well-mixed 64-bit hash (SplitMix64): per-SIM traits derived from the seed without storing them.
pub fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

/// The Luhn check digit for `payload` (ASCII digits): the same rule the platform checks ICCIDs
/// with.
pub use domain::ids::luhn_check_digit as luhn_digit;

pub fn iccid_with_luhn(iccid: u64) -> String {
    let base = iccid.to_string();
    let check = luhn_digit(&base);
    format!("{base}{check}")
}

/// A path ICCID: the 19-digit form, or the 20-digit form when its Luhn digit is right.
pub fn parse_iccid(text: &str) -> Option<u64> {
    if !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    match text.len() {
        19 => text.parse().ok(),
        20 => {
            let (base, check) = text.split_at(19);
            (luhn_digit(base).to_string() == check).then(|| base.parse().ok())?
        }
        _ => None,
    }
}

/// Bytes as MB with six decimals, exactly: 2803 → "0.002803".
pub fn mb_string(bytes: u64) -> String {
    format!("{}.{:06}", bytes / BYTES_PER_MB, bytes % BYTES_PER_MB)
}

/// Bytes as a JSON number of MB: an integer when whole (500), else the shortest decimal that
/// round-trips, which for ≤ 15 significant digits is the exact six-decimal value.
pub fn mb_number(bytes: u64) -> Value {
    if bytes.is_multiple_of(BYTES_PER_MB) {
        Value::from(bytes / BYTES_PER_MB)
    } else {
        Value::from(bytes as f64 / BYTES_PER_MB as f64)
    }
}

/// 1NCE's SIM timestamps: `2018-03-09T07:59:09.000+0000`.
pub fn ts_offset(at: DateTime<Utc>) -> String {
    at.format("%Y-%m-%dT%H:%M:%S%.3f%z").to_string()
}

/// The quota/SMS/usage style: `2015-10-05T13:56:59.000Z`.
pub fn ts_z(at: DateTime<Utc>) -> String {
    at.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn luhn_of_known_numbers() {
        // 79927398713 is the textbook Luhn example.
        assert_eq!(luhn_digit("7992739871"), 3);
        let with = iccid_with_luhn(8988303000123456789);
        assert_eq!(with.len(), 20);
        assert_eq!(parse_iccid(&with), Some(8988303000123456789));
        let wrong = format!("{}{}", &with[..19], (luhn_digit(&with[..19]) + 1) % 10);
        assert_eq!(parse_iccid(&wrong), None);
        assert_eq!(parse_iccid("898830300012345678"), None);
        assert_eq!(parse_iccid("89883030001234567x9"), None);
    }

    #[test]
    fn mb_values_are_exact() {
        assert_eq!(mb_string(2803), "0.002803");
        assert_eq!(mb_string(500_000_000), "500.000000");
        assert_eq!(mb_number(500_000_000), Value::from(500u64));
        assert_eq!(mb_number(435_787_951).to_string(), "435.787951");
        assert_eq!(mb_number(1).to_string(), "1e-6");
    }

    #[test]
    fn timestamp_styles() {
        let at = Utc.with_ymd_and_hms(2018, 3, 9, 7, 59, 9).unwrap();
        assert_eq!(ts_offset(at), "2018-03-09T07:59:09.000+0000");
        assert_eq!(ts_z(at), "2018-03-09T07:59:09.000Z");
    }
}
