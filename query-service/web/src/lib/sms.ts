// How many SMS parts a text takes, ported from the domain (crates/domain/src/sms/encoding.rs):
// GSM 03.38 (3GPP TS 23.038) when every character fits, UCS-2 otherwise. The composer shows
// exactly what the command API will accept and the provider will bill.

export const MAX_PARTS = 6;
export const GSM7_SINGLE = 160;
export const GSM7_PER_PART = 153;
export const UCS2_SINGLE = 70;
export const UCS2_PER_PART = 67;

export type Encoding = 'gsm7' | 'ucs2';

const ESC = '\u001b';

/** The GSM 03.38 default alphabet, indexed by its 7-bit code (0x1B is the escape). */
export const GSM7_BASIC: readonly string[] = [
  '@', '£', '$', '¥', 'è', 'é', 'ù', 'ì', 'ò', 'Ç', '\n', 'Ø', 'ø', '\r', 'Å', 'å',
  'Δ', '_', 'Φ', 'Γ', 'Λ', 'Ω', 'Π', 'Ψ', 'Σ', 'Θ', 'Ξ', ESC, 'Æ', 'æ', 'ß', 'É',
  ' ', '!', '"', '#', '¤', '%', '&', "'", '(', ')', '*', '+', ',', '-', '.', '/',
  '0', '1', '2', '3', '4', '5', '6', '7', '8', '9', ':', ';', '<', '=', '>', '?',
  '¡', 'A', 'B', 'C', 'D', 'E', 'F', 'G', 'H', 'I', 'J', 'K', 'L', 'M', 'N', 'O',
  'P', 'Q', 'R', 'S', 'T', 'U', 'V', 'W', 'X', 'Y', 'Z', 'Ä', 'Ö', 'Ñ', 'Ü', '§',
  '¿', 'a', 'b', 'c', 'd', 'e', 'f', 'g', 'h', 'i', 'j', 'k', 'l', 'm', 'n', 'o',
  'p', 'q', 'r', 's', 't', 'u', 'v', 'w', 'x', 'y', 'z', 'ä', 'ö', 'ñ', 'ü', 'à',
];

/** The extension table: each is sent as ESC plus one code, so it costs 2 septets. */
export const GSM7_EXTENSION: readonly string[] = ['\u000c', '^', '{', '}', '\\', '[', '~', ']', '|', '€'];

const BASIC = new Set(GSM7_BASIC.filter((c) => c !== ESC));
const EXTENSION = new Set(GSM7_EXTENSION);

/** Septets a character (one code point) takes in GSM-7, or null when it has no GSM-7 form. */
export function gsm7Septets(c: string): number | null {
  if (BASIC.has(c)) return 1;
  if (EXTENSION.has(c)) return 2;
  return null;
}

function partsFor(length: number, single: number, perPart: number): number {
  return length <= single ? 1 : Math.ceil(length / perPart);
}

/** What the composer shows: the encoding, the length in its units, the parts, and what is wrong. */
export interface SmsCount {
  encoding: Encoding;
  /** Septets (GSM-7) or UTF-16 code units (UCS-2). */
  length: number;
  parts: number;
  /** Units still free in the current number of parts. */
  remainingInPart: number;
  /** The most units that fit in MAX_PARTS parts of this encoding. */
  limit: number;
  /** The domain's refusal, in its words, or null when the text can be sent. */
  error: 'SMS_PAYLOAD_EMPTY' | 'SMS_PAYLOAD_TOO_LONG' | null;
}

/** The encoding and number of parts a payload needs, as `sms_encoding` in the domain. */
export function countSms(payload: string): SmsCount {
  let septets: number | null = 0;
  // for…of walks code points, as Rust's `chars()` does (an emoji is one character here).
  for (const c of payload) {
    const n = gsm7Septets(c);
    if (n === null) {
      septets = null;
      break;
    }
    septets += n;
  }
  const encoding: Encoding = septets === null ? 'ucs2' : 'gsm7';
  // A JavaScript string's length is its number of UTF-16 code units, as `encode_utf16().count()`.
  const length = septets ?? payload.length;
  const [single, perPart] = encoding === 'gsm7' ? [GSM7_SINGLE, GSM7_PER_PART] : [UCS2_SINGLE, UCS2_PER_PART];
  const parts = partsFor(length, single, perPart);
  const capacity = parts === 1 ? single : parts * perPart;
  const error = payload.length === 0 ? 'SMS_PAYLOAD_EMPTY' : parts > MAX_PARTS ? 'SMS_PAYLOAD_TOO_LONG' : null;
  return { encoding, length, parts, remainingInPart: Math.max(0, capacity - length), limit: MAX_PARTS * perPart, error };
}

/** The unit lengths are counted in, as the domain names it. */
export function encodingUnit(encoding: Encoding): string {
  return encoding === 'gsm7' ? 'GSM-7 septets' : 'UCS-2 code units';
}
