//! The words the read models and the APIs spell the statuses with (`active`, `delivered`,
//! `MT`, …), both ways: read rows hold the enums, Postgres and JSON hold the words. Each enum's
//! words are listed once, below.

use std::fmt;
use std::str::FromStr;

use crate::quota::QuotaState;
use crate::sim::SimStatus;
use crate::sms::{Direction, SmsStatus};

/// A word that is not one of an enum's spellings.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {what} {value:?}: expected one of {expected}")]
pub struct UnknownWord {
    pub what: &'static str,
    pub value: String,
    pub expected: String,
}

/// An enum written as one of a fixed set of words.
pub trait Spelled: Copy + Sized + 'static {
    /// What it is, for messages (`SIM status`).
    const WHAT: &'static str;
    /// Every value, in the order lists show them.
    const ALL: &'static [Self];
    fn as_str(self) -> &'static str;

    /// The value spelled `word` (exactly).
    fn parse_word(word: &str) -> Result<Self, UnknownWord> {
        Self::ALL
            .iter()
            .copied()
            .find(|value| value.as_str() == word)
            .ok_or_else(|| UnknownWord {
                what: Self::WHAT,
                value: word.chars().take(64).collect(),
                expected: Self::ALL
                    .iter()
                    .map(|v| v.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
            })
    }
}

/// The words of an enum, one row per value: its `as_str`, `Display`, [`Spelled`], `FromStr` and
/// `TryFrom<String>` all read this one table.
macro_rules! spelled {
    ($ty:ty, $what:literal, {$($value:path => $word:literal),+ $(,)?}) => {
        impl $ty {
            pub fn as_str(self) -> &'static str {
                match self {
                    $($value => $word,)+
                }
            }
        }

        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl Spelled for $ty {
            const WHAT: &'static str = $what;
            const ALL: &'static [Self] = &[$($value),+];
            fn as_str(self) -> &'static str {
                <$ty>::as_str(self)
            }
        }

        impl FromStr for $ty {
            type Err = UnknownWord;
            fn from_str(word: &str) -> Result<Self, UnknownWord> {
                <$ty as Spelled>::parse_word(word)
            }
        }

        /// For rows read from Postgres (`#[sqlx(try_from = "String")]`).
        impl TryFrom<String> for $ty {
            type Error = UnknownWord;
            fn try_from(word: String) -> Result<Self, UnknownWord> {
                word.parse()
            }
        }
    };
}

spelled!(SimStatus, "SIM status", {
    SimStatus::Inactive => "inactive",
    SimStatus::Active => "active",
    SimStatus::Suspended => "suspended",
    SimStatus::Terminated => "terminated",
});
spelled!(SmsStatus, "SMS status", {
    SmsStatus::Requested => "requested",
    SmsStatus::Submitted => "submitted",
    SmsStatus::Delivered => "delivered",
    SmsStatus::Failed => "failed",
    SmsStatus::Received => "received",
    SmsStatus::Unknown => "unknown",
});
spelled!(QuotaState, "quota state", {
    QuotaState::Ok => "ok",
    QuotaState::Warning => "warning",
    QuotaState::Exhausted => "exhausted",
});
spelled!(Direction, "SMS direction", {
    Direction::MobileTerminated => "MT",
    Direction::MobileOriginated => "MO",
});

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_word_reads_back_and_agrees_with_serde() {
        fn check<T: Spelled + FromStr<Err = UnknownWord> + serde::Serialize + PartialEq + std::fmt::Debug>() {
            for value in T::ALL {
                assert_eq!(value.as_str().parse::<T>().unwrap(), *value);
                assert_eq!(serde_json::to_value(value).unwrap(), value.as_str());
            }
            let error = "nonsense".parse::<T>().unwrap_err();
            assert!(error.to_string().contains(T::ALL[0].as_str()), "{error}");
        }
        check::<SimStatus>();
        check::<SmsStatus>();
        check::<Direction>();
    }
}
