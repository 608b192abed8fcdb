//! API keys: `iot_key_<43 url-safe chars>` (256 random bits). Only the SHA-256 is stored: keys
//! are high-entropy, so a fast hash is enough (no salt/argon2 needed) and allows an indexed
//! lookup by hash.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use rand::rngs::OsRng;
use rand::TryRngCore;
use sha2::{Digest, Sha256};

pub const API_KEY_PREFIX: &str = "iot_key_";
/// Characters shown for display (`iot_key_` + 4 random ones).
pub const DISPLAY_PREFIX_LEN: usize = 12;
const RANDOM_BYTES: usize = 32;
const MAX_KEY_LEN: usize = 128;

#[derive(Clone, PartialEq, Eq)]
pub struct NewApiKey {
    /// The full key: shown to its creator once, never stored.
    pub key: String,
    /// For display and lookup by humans.
    pub prefix: String,
    /// SHA-256 hex of the whole key: what the database stores.
    pub hash: String,
}

impl std::fmt::Debug for NewApiKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewApiKey")
            .field("prefix", &self.prefix)
            .field("hash", &self.hash)
            .finish_non_exhaustive()
    }
}

/// Panics only if the operating system's random source fails (nothing safe to do then).
pub fn generate_api_key() -> NewApiKey {
    let mut bytes = [0u8; RANDOM_BYTES];
    OsRng
        .try_fill_bytes(&mut bytes)
        .expect("operating system random source failed");
    let key = format!("{API_KEY_PREFIX}{}", URL_SAFE_NO_PAD.encode(bytes));
    NewApiKey {
        prefix: key[..DISPLAY_PREFIX_LEN].to_owned(),
        hash: hash_api_key(&key),
        key,
    }
}

pub fn hash_api_key(key: &str) -> String {
    hex::encode(Sha256::digest(key.as_bytes()))
}

/// Cheap shape check before any database lookup.
pub fn looks_like_api_key(key: &str) -> bool {
    key.len() <= MAX_KEY_LEN
        && key.len() > API_KEY_PREFIX.len()
        && key.starts_with(API_KEY_PREFIX)
        && key[API_KEY_PREFIX.len()..]
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_keys_have_the_documented_shape() {
        let k = generate_api_key();
        assert!(k.key.starts_with("iot_key_"));
        let random = &k.key["iot_key_".len()..];
        assert!(random.len() >= 32, "{}", k.key);
        assert!(random
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
        assert_eq!(k.prefix, &k.key[..12]);
        assert_eq!(k.hash, hash_api_key(&k.key));
        assert_eq!(k.hash.len(), 64);
        assert!(looks_like_api_key(&k.key));
        assert!(!format!("{k:?}").contains(&k.key));
    }

    #[test]
    fn keys_are_unique() {
        let a = generate_api_key();
        let b = generate_api_key();
        assert_ne!(a.key, b.key);
        assert_ne!(a.hash, b.hash);
    }

    #[test]
    fn hash_is_sha256_hex() {
        // echo -n abc | sha256sum
        assert_eq!(
            hash_api_key("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn malformed_keys_are_refused_early() {
        for bad in [
            "",
            "iot_key_",
            "sk_live_abcdef",
            "IOT_KEY_abc",
            "iot_key_a b",
            "iot_key_ä",
        ] {
            assert!(!looks_like_api_key(bad), "{bad:?}");
        }
        assert!(!looks_like_api_key(&format!("iot_key_{}", "a".repeat(200))));
    }
}
