// The same vectors as the domain's tests (crates/domain/src/sms/encoding.rs).
import { describe, expect, it } from 'vitest';
import { countSms, gsm7Septets, GSM7_BASIC, GSM7_EXTENSION } from './sms';

describe('GSM-7 alphabet', () => {
  it('the basic table is the standard one', () => {
    expect(new Set(GSM7_BASIC).size).toBe(128);
    expect(GSM7_BASIC[0x00]).toBe('@');
    expect(GSM7_BASIC[0x09]).toBe('Ç');
    expect(GSM7_BASIC[0x10]).toBe('Δ');
    expect(GSM7_BASIC[0x24]).toBe('¤');
    expect(GSM7_BASIC[0x40]).toBe('¡');
    expect(GSM7_BASIC[0x41]).toBe('A');
    expect(GSM7_BASIC[0x5f]).toBe('§');
    expect(GSM7_BASIC[0x60]).toBe('¿');
    expect(GSM7_BASIC[0x7f]).toBe('à');
    for (const c of 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789') expect(gsm7Septets(c)).toBe(1);
  });

  it('extension characters cost two septets', () => {
    for (const c of GSM7_EXTENSION) expect(gsm7Septets(c), JSON.stringify(c)).toBe(2);
    expect(gsm7Septets('\u001b'), 'the escape itself is not text').toBeNull();
    for (const c of ['`', 'ç', 'Ã', 'á', '\t', '😀', 'Ą', 'ê']) expect(gsm7Septets(c), c).toBeNull();
  });
});

describe('countSms', () => {
  const cases: [string, string, 'gsm7' | 'ucs2', number][] = [
    ['hello', 'hello', 'gsm7', 1],
    ['160 a', 'a'.repeat(160), 'gsm7', 1],
    ['161 a', 'a'.repeat(161), 'gsm7', 2],
    ['306 a', 'a'.repeat(306), 'gsm7', 2],
    ['307 a', 'a'.repeat(307), 'gsm7', 3],
    ['918 a', 'a'.repeat(918), 'gsm7', 6],
    // 80 euro signs are 160 septets: still one part; 81 are not.
    ['80 €', '€'.repeat(80), 'gsm7', 1],
    ['81 €', '€'.repeat(81), 'gsm7', 2],
    ['mixed GSM-7', 'Grüße aus Köln: 5€ {ok} ΔΣ', 'gsm7', 1],
    ['ç', 'ç', 'ucs2', 1],
    ['70 ж', 'ж'.repeat(70), 'ucs2', 1],
    ['71 ж', 'ж'.repeat(71), 'ucs2', 2],
    ['402 ж', 'ж'.repeat(402), 'ucs2', 6],
    // One non-GSM character switches the whole message to UCS-2.
    ['69 a + ç', `${'a'.repeat(69)}ç`, 'ucs2', 1],
    ['70 a + ç', `${'a'.repeat(70)}ç`, 'ucs2', 2],
    // An emoji is two UTF-16 code units.
    ['35 emoji', '😀'.repeat(35), 'ucs2', 1],
    ['36 emoji', '😀'.repeat(36), 'ucs2', 2],
  ];
  it.each(cases)('%s', (_, payload, encoding, parts) => {
    const count = countSms(payload);
    expect([count.encoding, count.parts, count.error]).toEqual([encoding, parts, null]);
  });

  it('refuses an empty payload', () => {
    expect(countSms('').error).toBe('SMS_PAYLOAD_EMPTY');
  });

  it('refuses more than six parts, with the limit the domain states', () => {
    const gsm = countSms('a'.repeat(919));
    expect(gsm).toMatchObject({ error: 'SMS_PAYLOAD_TOO_LONG', length: 919, limit: 918, parts: 7 });
    expect(countSms('ж'.repeat(403))).toMatchObject({ encoding: 'ucs2', error: 'SMS_PAYLOAD_TOO_LONG', length: 403, limit: 402, parts: 7 });
    // Extension characters count double towards the limit.
    expect(countSms('€'.repeat(460)).error).toBe('SMS_PAYLOAD_TOO_LONG');
    expect(countSms('€'.repeat(459)).error).toBeNull();
  });

  it('says how many units are still free in the current parts', () => {
    expect(countSms('hello').remainingInPart).toBe(155);
    expect(countSms('a'.repeat(161)).remainingInPart).toBe(306 - 161);
    expect(countSms('€').remainingInPart).toBe(158);
    expect(countSms('ж'.repeat(71)).remainingInPart).toBe(134 - 71);
  });
});
