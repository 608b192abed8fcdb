//! How many SMS parts a payload takes: GSM 03.38 (3GPP TS 23.038) when every character fits,
//! UCS-2 otherwise. The count is what the provider bills and what limits a message's length.

use serde::{Deserialize, Serialize};

use super::SmsError;

/// The most parts a message may take; 1NCE and most handsets handle far longer concatenations
/// badly, and a runaway payload would cost many SMS.
pub const MAX_PARTS: u8 = 6;
pub const GSM7_SINGLE: usize = 160;
pub const GSM7_PER_PART: usize = 153;
pub const UCS2_SINGLE: usize = 70;
pub const UCS2_PER_PART: usize = 67;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Encoding {
    Gsm7,
    Ucs2,
}

impl Encoding {
    /// The unit lengths are counted in, for messages.
    pub fn unit(self) -> &'static str {
        match self {
            Encoding::Gsm7 => "GSM-7 septets",
            Encoding::Ucs2 => "UCS-2 code units",
        }
    }
}

const ESC: char = '\u{1B}';

/// The GSM 03.38 default alphabet, indexed by its 7-bit code. 0x1B is the escape to the
/// extension table, not a character of its own.
pub const GSM7_BASIC: [char; 128] = [
    // 0x00
    '@', '£', '$', '¥', 'è', 'é', 'ù', 'ì', 'ò', 'Ç', '\n', 'Ø', 'ø', '\r', 'Å', 'å', // 0x10
    'Δ', '_', 'Φ', 'Γ', 'Λ', 'Ω', 'Π', 'Ψ', 'Σ', 'Θ', 'Ξ', ESC, 'Æ', 'æ', 'ß', 'É', // 0x20
    ' ', '!', '"', '#', '¤', '%', '&', '\'', '(', ')', '*', '+', ',', '-', '.', '/', // 0x30
    '0', '1', '2', '3', '4', '5', '6', '7', '8', '9', ':', ';', '<', '=', '>', '?', // 0x40
    '¡', 'A', 'B', 'C', 'D', 'E', 'F', 'G', 'H', 'I', 'J', 'K', 'L', 'M', 'N', 'O', // 0x50
    'P', 'Q', 'R', 'S', 'T', 'U', 'V', 'W', 'X', 'Y', 'Z', 'Ä', 'Ö', 'Ñ', 'Ü', '§', // 0x60
    '¿', 'a', 'b', 'c', 'd', 'e', 'f', 'g', 'h', 'i', 'j', 'k', 'l', 'm', 'n', 'o', // 0x70
    'p', 'q', 'r', 's', 't', 'u', 'v', 'w', 'x', 'y', 'z', 'ä', 'ö', 'ñ', 'ü', 'à',
];

/// The extension table's characters: each is sent as ESC plus one code, so it costs 2 septets.
pub const GSM7_EXTENSION: [char; 10] = ['\u{0C}', '^', '{', '}', '\\', '[', '~', ']', '|', '€'];

/// Septets a character takes in GSM-7, or `None` when it has no GSM-7 form.
pub fn gsm7_septets(c: char) -> Option<usize> {
    if c == ESC {
        None
    } else if GSM7_BASIC.contains(&c) {
        Some(1)
    } else if GSM7_EXTENSION.contains(&c) {
        Some(2)
    } else {
        None
    }
}

fn parts_for(len: usize, single: usize, per_part: usize) -> usize {
    if len <= single {
        1
    } else {
        len.div_ceil(per_part)
    }
}

/// The encoding and number of parts a payload needs, or why it cannot be sent.
pub fn sms_encoding(payload: &str) -> Result<(Encoding, u8), SmsError> {
    if payload.is_empty() {
        return Err(SmsError::PayloadEmpty);
    }
    let septets: Option<usize> = payload.chars().map(gsm7_septets).sum();
    let (encoding, length, single, per_part) = match septets {
        Some(n) => (Encoding::Gsm7, n, GSM7_SINGLE, GSM7_PER_PART),
        None => (
            Encoding::Ucs2,
            payload.encode_utf16().count(),
            UCS2_SINGLE,
            UCS2_PER_PART,
        ),
    };
    let parts = parts_for(length, single, per_part);
    if parts > usize::from(MAX_PARTS) {
        return Err(SmsError::PayloadTooLong {
            encoding,
            length,
            limit: usize::from(MAX_PARTS) * per_part,
            parts,
        });
    }
    Ok((encoding, parts as u8))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::DomainError;

    #[test]
    fn the_basic_table_is_the_standard_one() {
        let distinct: std::collections::HashSet<char> = GSM7_BASIC.iter().copied().collect();
        assert_eq!(distinct.len(), 128, "no duplicates");
        assert_eq!(GSM7_BASIC[0x00], '@');
        assert_eq!(GSM7_BASIC[0x09], 'Ç');
        assert_eq!(GSM7_BASIC[0x10], 'Δ');
        assert_eq!(GSM7_BASIC[0x24], '¤');
        assert_eq!(GSM7_BASIC[0x40], '¡');
        assert_eq!(GSM7_BASIC[0x41], 'A');
        assert_eq!(GSM7_BASIC[0x5F], '§');
        assert_eq!(GSM7_BASIC[0x60], '¿');
        assert_eq!(GSM7_BASIC[0x7F], 'à');
        for c in ('A'..='Z').chain('a'..='z').chain('0'..='9') {
            assert_eq!(gsm7_septets(c), Some(1), "{c}");
        }
    }

    #[test]
    fn extension_characters_cost_two_septets() {
        for c in GSM7_EXTENSION {
            assert_eq!(gsm7_septets(c), Some(2), "{c:?}");
        }
        assert_eq!(gsm7_septets(ESC), None, "the escape itself is not text");
        // Lookalikes that are not in the alphabet.
        for c in ['`', 'ç', 'Ã', 'á', '\t', '😀', 'Ą', 'ê'] {
            assert_eq!(gsm7_septets(c), None, "{c:?}");
        }
    }

    #[test]
    fn single_and_multipart_boundaries_of_both_encodings() {
        use Encoding::{Gsm7, Ucs2};
        for (payload, encoded) in [
            ("hello".to_owned(), (Gsm7, 1)),
            ("a".repeat(160), (Gsm7, 1)),
            ("a".repeat(161), (Gsm7, 2)),
            ("a".repeat(306), (Gsm7, 2)),
            ("a".repeat(307), (Gsm7, 3)),
            ("a".repeat(918), (Gsm7, 6)),
            // 80 euro signs are 160 septets: still one part; 81 are not.
            ("€".repeat(80), (Gsm7, 1)),
            ("€".repeat(81), (Gsm7, 2)),
            ("Grüße aus Köln: 5€ {ok} ΔΣ".to_owned(), (Gsm7, 1)),
            ("ç".to_owned(), (Ucs2, 1)),
            ("ж".repeat(70), (Ucs2, 1)),
            ("ж".repeat(71), (Ucs2, 2)),
            ("ж".repeat(402), (Ucs2, 6)),
            // One non-GSM character switches the whole message to UCS-2.
            (format!("{}ç", "a".repeat(69)), (Ucs2, 1)),
            (format!("{}ç", "a".repeat(70)), (Ucs2, 2)),
            // An emoji is two UTF-16 code units.
            ("😀".repeat(35), (Ucs2, 1)),
            ("😀".repeat(36), (Ucs2, 2)),
        ] {
            let length = payload.chars().count();
            assert_eq!(
                sms_encoding(&payload).unwrap(),
                encoded,
                "{length} characters: {payload:.20}…"
            );
        }
    }

    #[test]
    fn empty_and_too_long_payloads_are_refused() {
        assert_eq!(sms_encoding("").unwrap_err().code(), "SMS_PAYLOAD_EMPTY");
        let e = sms_encoding(&"a".repeat(919)).unwrap_err();
        assert_eq!(e.code(), "SMS_PAYLOAD_TOO_LONG");
        assert_eq!(e.kind(), crate::ErrorKind::Validation);
        let msg = e.to_string();
        assert!(msg.contains("919") && msg.contains("918"), "{msg}");
        let e = sms_encoding(&"ж".repeat(403)).unwrap_err();
        assert_eq!(
            e,
            SmsError::PayloadTooLong {
                encoding: Encoding::Ucs2,
                length: 403,
                limit: 402,
                parts: 7
            }
        );
        // Extension characters count double towards the limit.
        assert!(sms_encoding(&"€".repeat(460)).is_err());
        assert!(sms_encoding(&"€".repeat(459)).is_ok());
    }
}
