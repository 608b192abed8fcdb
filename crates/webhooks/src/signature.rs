//! The signatures of deliveries. `X-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of
//! "<t>.<body>">` (the contract's): the timestamp is signed with the body, so a receiver that
//! refuses old timestamps refuses a replayed delivery. `X-Sim-Signature: sha256=<hex HMAC of
//! the body>` is the body alone, for receivers that only check integrity.

use hmac::{Hmac, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

fn hmac_hex(secret: &str, parts: &[&[u8]]) -> String {
    // HMAC takes a key of any length.
    let mut mac = HmacSha256::new_from_slice(secret.as_bytes()).expect("any key length");
    for part in parts {
        mac.update(part);
    }
    hex::encode(mac.finalize().into_bytes())
}

/// The `X-Signature` value for `body` sent at `timestamp` (unix seconds).
pub fn signature_header(secret: &str, timestamp: i64, body: &[u8]) -> String {
    let t = timestamp.to_string();
    format!("t={t},v1={}", hmac_hex(secret, &[t.as_bytes(), b".", body]))
}

/// The `X-Sim-Signature` value: `sha256=<hex HMAC of the body>`.
pub fn body_signature_header(secret: &str, body: &[u8]) -> String {
    format!("sha256={}", hmac_hex(secret, &[body]))
}

/// Checks an `X-Signature` value as a receiver would: the HMAC over `"<t>.<body>"`, and `t`
/// within `tolerance_secs` of `now` (older is a replay). Compares in constant time.
pub fn verify(secret: &str, header: &str, body: &[u8], now: i64, tolerance_secs: i64) -> bool {
    let mut timestamp = None;
    let mut signature = None;
    for part in header.split(',') {
        match part.split_once('=') {
            Some(("t", value)) => timestamp = value.parse::<i64>().ok(),
            Some(("v1", value)) => signature = hex::decode(value).ok(),
            _ => {}
        }
    }
    let (Some(t), Some(signature)) = (timestamp, signature) else {
        return false;
    };
    if (now - t).abs() > tolerance_secs {
        return false;
    }
    let mut mac = HmacSha256::new_from_slice(secret.as_bytes()).expect("any key length");
    mac.update(t.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    mac.verify_slice(&signature).is_ok()
}

/// A new secret: 32 random bytes (two v4 UUIDs' randomness, 244 bits), hex, prefixed.
pub fn new_secret() -> String {
    let (a, b) = (uuid::Uuid::new_v4(), uuid::Uuid::new_v4());
    format!("whsec_{}{}", a.simple(), b.simple())
}
