//! Distinct, valid identifiers for tests.

use domain::Iccid;

/// A valid 19-digit ICCID, distinct per `n`.
pub fn iccid(n: u32) -> String {
    format!("89883030001{n:08}")
}

/// The 20-digit form of a 19-digit ICCID, with its Luhn check digit.
pub fn with_luhn(iccid19: &str) -> String {
    Iccid::parse(iccid19).expect("a valid ICCID").with_luhn()
}
