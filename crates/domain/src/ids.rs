//! Identifiers and small value types.
//!
//! Every value is validated once, when it is built or deserialised, so that the aggregates never
//! see a malformed ICCID and the event store never holds one.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Why an identifier was refused. Every variant is a validation error (HTTP 422).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    #[error("invalid ICCID {value:?}: {problem}")]
    InvalidIccid { value: String, problem: IccidProblem },
    #[error("invalid IMSI {value:?}: an IMSI is exactly 15 digits")]
    InvalidImsi { value: String },
    #[error("invalid MSISDN {value:?}: an MSISDN is 1 to 15 digits, without '+' or separators")]
    InvalidMsisdn { value: String },
    #[error("invalid IMEI {value:?}: an IMEI is 14 to 16 digits")]
    InvalidImei { value: String },
    #[error("invalid quota kind {value:?}: expected \"data\" or \"sms\"")]
    InvalidQuotaKind { value: String },
}

/// What exactly is wrong with an ICCID, so the message can tell a typo from a wrong check digit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum IccidProblem {
    #[error("an ICCID contains digits only")]
    Characters,
    #[error("an ICCID is 19 digits, or 20 with its Luhn check digit; got {0} digits")]
    Length(usize),
    #[error("wrong Luhn check digit: expected {expected}, got {found}")]
    CheckDigit { expected: u8, found: u8 },
}

impl_domain_error!(IdError {
    InvalidIccid => "INVALID_ICCID", Validation;
    InvalidImsi => "INVALID_IMSI", Validation;
    InvalidMsisdn => "INVALID_MSISDN", Validation;
    InvalidImei => "INVALID_IMEI", Validation;
    InvalidQuotaKind => "INVALID_QUOTA_KIND", Validation;
});

/// Echoes user input in messages without letting a huge input make a huge error body.
fn shown(value: &str) -> String {
    const MAX: usize = 40;
    if value.chars().count() <= MAX {
        value.to_owned()
    } else {
        let mut s: String = value.chars().take(MAX).collect();
        s.push('…');
        s
    }
}

fn all_digits(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())
}

/// The Luhn (mod 10) check digit of a digit string: every second digit, starting with the
/// rightmost digit of the payload, is doubled. Callers pass ASCII digits only.
pub fn luhn_check_digit(payload: &str) -> u8 {
    let sum: u32 = payload
        .bytes()
        .rev()
        .enumerate()
        .map(|(i, b)| {
            let d = u32::from(b - b'0');
            if i % 2 == 0 {
                let doubled = d * 2;
                if doubled > 9 {
                    doubled - 9
                } else {
                    doubled
                }
            } else {
                d
            }
        })
        .sum();
    ((10 - sum % 10) % 10) as u8
}

/// Implements the string plumbing shared by all validated string newtypes.
macro_rules! string_value {
    ($name:ident, $pattern:literal, $description:literal) => {
        impl schemars::JsonSchema for $name {
            fn schema_name() -> std::borrow::Cow<'static, str> {
                stringify!($name).into()
            }

            fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
                schemars::json_schema!({
                    "type": "string",
                    "pattern": $pattern,
                    "description": $description,
                })
            }
        }

        impl $name {
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl FromStr for $name {
            type Err = IdError;
            fn from_str(s: &str) -> Result<Self, IdError> {
                Self::parse(s)
            }
        }

        impl TryFrom<String> for $name {
            type Error = IdError;
            fn try_from(s: String) -> Result<Self, IdError> {
                Self::parse(&s)
            }
        }

        impl TryFrom<&str> for $name {
            type Error = IdError;
            fn try_from(s: &str) -> Result<Self, IdError> {
                Self::parse(s)
            }
        }

        impl From<$name> for String {
            fn from(v: $name) -> String {
                v.0
            }
        }
    };
}

/// A SIM's ICCID in 1NCE's 19-digit form (without the Luhn digit): the SIM aggregate's id.
///
/// The 20-digit form printed on cards is accepted too, but only with a correct check digit, so a
/// mistyped digit is caught instead of silently creating a second SIM.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Iccid(String);

impl Iccid {
    pub fn parse(input: &str) -> Result<Self, IdError> {
        let s = input.trim();
        let err = |problem| IdError::InvalidIccid {
            value: shown(input),
            problem,
        };
        if !all_digits(s) {
            return Err(err(IccidProblem::Characters));
        }
        match s.len() {
            19 => Ok(Iccid(s.to_owned())),
            20 => {
                let (payload, check) = s.split_at(19);
                let expected = luhn_check_digit(payload);
                let found = check.as_bytes()[0] - b'0';
                if expected == found {
                    Ok(Iccid(payload.to_owned()))
                } else {
                    Err(err(IccidProblem::CheckDigit { expected, found }))
                }
            }
            n => Err(err(IccidProblem::Length(n))),
        }
    }

    /// The 20-digit form with the Luhn check digit (1NCE's `iccid_with_luhn`).
    pub fn with_luhn(&self) -> String {
        format!("{}{}", self.0, luhn_check_digit(&self.0))
    }
}
string_value!(
    Iccid,
    "^[0-9]{19}$",
    "ICCID, 19 digits (1NCE's form, without the Luhn check digit)"
);

/// Declares a string of ASCII digits whose length lies in `$lengths` (after trimming); any other
/// input is refused with `IdError::$invalid`.
macro_rules! digits_value {
    ($(#[$doc:meta])* $name:ident, $lengths:expr, $invalid:ident, $pattern:literal, $description:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            pub fn parse(input: &str) -> Result<Self, IdError> {
                let s = input.trim();
                if all_digits(s) && ($lengths).contains(&s.len()) {
                    Ok($name(s.to_owned()))
                } else {
                    Err(IdError::$invalid { value: shown(input) })
                }
            }
        }
        string_value!($name, $pattern, $description);
    };
}

digits_value!(
    /// International Mobile Subscriber Identity: exactly 15 digits.
    Imsi, 15..=15, InvalidImsi, "^[0-9]{15}$", "IMSI, 15 digits"
);
digits_value!(
    /// A phone number as 1NCE stores it: E.164 digits without `+` (at most 15).
    Msisdn, 1..=15, InvalidMsisdn, "^[0-9]{1,15}$", "MSISDN, digits only"
);
digits_value!(
    /// The device's IMEI as the network reports it: 14 digits (no check digit), 15 (with it) or 16
    /// (IMEISV).
    Imei, 14..=16, InvalidImei, "^[0-9]{14,16}$", "IMEI, 14 to 16 digits"
);

/// The two quotas 1NCE keeps per SIM; each is its own aggregate.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum QuotaKind {
    Data,
    Sms,
}

impl QuotaKind {
    pub fn as_str(self) -> &'static str {
        match self {
            QuotaKind::Data => "data",
            QuotaKind::Sms => "sms",
        }
    }
}

impl fmt::Display for QuotaKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for QuotaKind {
    type Err = IdError;
    fn from_str(s: &str) -> Result<Self, IdError> {
        match s.trim().to_ascii_lowercase().as_str() {
            "data" => Ok(QuotaKind::Data),
            "sms" => Ok(QuotaKind::Sms),
            _ => Err(IdError::InvalidQuotaKind { value: shown(s) }),
        }
    }
}

/// The quota aggregate's id: one aggregate per SIM and kind.
pub fn quota_aggregate_id(iccid: &Iccid, kind: QuotaKind) -> String {
    format!("{}:{}", iccid, kind)
}

/// The inverse of [`quota_aggregate_id`], for readers that only have the stored aggregate id
/// (e.g. the relay building a `sim.v1.<iccid>.…` subject).
pub fn parse_quota_aggregate_id(id: &str) -> Result<(Iccid, QuotaKind), IdError> {
    let (iccid, kind) = id
        .rsplit_once(':')
        .ok_or_else(|| IdError::InvalidQuotaKind { value: shown(id) })?;
    Ok((Iccid::parse(iccid)?, kind.parse()?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{DomainError, ErrorKind};

    const ICCID: &str = "8988303000123456789";

    #[test]
    fn luhn_matches_the_textbook_example() {
        assert_eq!(luhn_check_digit("7992739871"), 3);
        assert_eq!(luhn_check_digit("0"), 0);
        assert_eq!(luhn_check_digit("1"), 8);
    }

    #[test]
    fn iccid_accepts_19_digits_and_trims() {
        let id = Iccid::parse(&format!("  {ICCID} ")).unwrap();
        assert_eq!(id.as_str(), ICCID);
        assert_eq!(id.to_string(), ICCID);
    }

    #[test]
    fn iccid_accepts_20_digits_with_the_right_check_digit_and_normalises() {
        let digit = luhn_check_digit(ICCID);
        let twenty = format!("{ICCID}{digit}");
        let id = Iccid::parse(&twenty).unwrap();
        assert_eq!(id.as_str(), ICCID);
        assert_eq!(id.with_luhn(), twenty);
    }

    #[test]
    fn iccid_refuses_a_wrong_check_digit() {
        let right = luhn_check_digit(ICCID);
        let wrong = (right + 1) % 10;
        let err = Iccid::parse(&format!("{ICCID}{wrong}")).unwrap_err();
        assert_eq!(err.code(), "INVALID_ICCID");
        assert_eq!(err.kind(), ErrorKind::Validation);
        assert!(matches!(
            err,
            IdError::InvalidIccid {
                problem: IccidProblem::CheckDigit { expected, found },
                ..
            } if expected == right && found == wrong
        ));
        assert!(err.to_string().contains("check digit"), "{err}");
    }

    #[test]
    fn iccid_refuses_other_lengths_and_characters() {
        for (input, problem) in [
            ("898830300012345678", IccidProblem::Length(18)),
            ("898830300012345678901", IccidProblem::Length(21)),
            ("", IccidProblem::Characters),
            ("89883030001234567a9", IccidProblem::Characters),
            ("8988 303000123456789", IccidProblem::Characters),
            ("+988303000123456789", IccidProblem::Characters),
        ] {
            match Iccid::parse(input) {
                Err(IdError::InvalidIccid { problem: p, .. }) => assert_eq!(p, problem, "{input}"),
                other => panic!("{input:?} gave {other:?}"),
            }
        }
        let msg = Iccid::parse("123").unwrap_err().to_string();
        assert!(msg.contains("got 3 digits"), "{msg}");
        // Non-ASCII digits are not digits here.
        assert!(Iccid::parse("898830300012345678٩").is_err());
    }

    #[test]
    fn iccid_serialises_as_a_string_and_validates_on_deserialise() {
        let id = Iccid::parse(ICCID).unwrap();
        assert_eq!(serde_json::to_string(&id).unwrap(), format!("\"{ICCID}\""));
        let back: Iccid = serde_json::from_str(&format!("\"{ICCID}\"")).unwrap();
        assert_eq!(back, id);
        assert!(serde_json::from_str::<Iccid>("\"12345\"").is_err());
        let twenty = format!("\"{}\"", id.with_luhn());
        assert_eq!(serde_json::from_str::<Iccid>(&twenty).unwrap(), id);
    }

    #[test]
    fn imsi_is_exactly_15_digits() {
        assert_eq!(
            Imsi::parse("901405100000001").unwrap().as_str(),
            "901405100000001"
        );
        for bad in ["90140510000000", "9014051000000012", "90140510000000x", ""] {
            let err = Imsi::parse(bad).unwrap_err();
            assert_eq!(err.code(), "INVALID_IMSI", "{bad}");
        }
        assert!(serde_json::from_str::<Imsi>("\"123\"").is_err());
    }

    #[test]
    fn msisdn_is_1_to_15_digits_without_plus_or_spaces() {
        assert!(Msisdn::parse("882285100000018").is_ok());
        assert!(Msisdn::parse("1").is_ok());
        for bad in ["", "+882285100000018", "8822 8510", "8822851000000181", "12-34"] {
            let err = Msisdn::parse(bad).unwrap_err();
            assert_eq!(err.code(), "INVALID_MSISDN", "{bad}");
        }
    }

    #[test]
    fn imei_is_14_to_16_digits() {
        for ok in ["35209900176148", "352099001761481", "3520990017614812"] {
            assert!(Imei::parse(ok).is_ok(), "{ok}");
        }
        for bad in ["3520990017614", "35209900176148123", "35209900176148a"] {
            assert_eq!(Imei::parse(bad).unwrap_err().code(), "INVALID_IMEI", "{bad}");
        }
    }

    #[test]
    fn quota_kind_round_trips_and_builds_the_aggregate_id() {
        assert_eq!("data".parse::<QuotaKind>().unwrap(), QuotaKind::Data);
        assert_eq!("SMS".parse::<QuotaKind>().unwrap(), QuotaKind::Sms);
        assert_eq!(
            "voice".parse::<QuotaKind>().unwrap_err().code(),
            "INVALID_QUOTA_KIND"
        );
        assert_eq!(serde_json::to_string(&QuotaKind::Sms).unwrap(), "\"sms\"");
        assert_eq!(QuotaKind::Data.to_string(), "data");
        let id = Iccid::parse(ICCID).unwrap();
        assert_eq!(quota_aggregate_id(&id, QuotaKind::Data), format!("{ICCID}:data"));
    }

    #[test]
    fn long_inputs_are_truncated_in_messages() {
        let long = "x".repeat(10_000);
        let msg = Imsi::parse(&long).unwrap_err().to_string();
        assert!(msg.len() < 200, "{msg}");
    }
}
