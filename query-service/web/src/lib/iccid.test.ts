import { describe, expect, it } from 'vitest';
import { iccidPrefix, luhnCheckDigit, parseIccid } from './iccid';

// The vectors of crates/domain/src/ids.rs's tests.
const ICCID = '8988303000123456789';

describe('luhnCheckDigit', () => {
  it('matches the textbook example', () => {
    expect(luhnCheckDigit('7992739871')).toBe(3);
    expect(luhnCheckDigit('0')).toBe(0);
    expect(luhnCheckDigit('1')).toBe(8);
  });
});

describe('parseIccid', () => {
  it('accepts 19 digits and trims', () => {
    expect(parseIccid(`  ${ICCID} `)).toEqual({ ok: true, iccid: ICCID });
  });

  it('accepts 20 digits with the right check digit and normalises', () => {
    const twenty = `${ICCID}${luhnCheckDigit(ICCID)}`;
    expect(parseIccid(twenty)).toEqual({ ok: true, iccid: ICCID });
  });

  it('refuses a wrong check digit', () => {
    const right = luhnCheckDigit(ICCID);
    const wrong = (right + 1) % 10;
    expect(parseIccid(`${ICCID}${wrong}`)).toEqual({
      ok: false,
      problem: { kind: 'check-digit', expected: right, found: wrong },
    });
  });

  it('refuses other lengths and characters', () => {
    const cases: [string, unknown][] = [
      ['898830300012345678', { kind: 'length', length: 18 }],
      ['898830300012345678901', { kind: 'length', length: 21 }],
      ['', { kind: 'characters' }],
      ['89883030001234567a9', { kind: 'characters' }],
      ['8988 303000123456789', { kind: 'characters' }],
      ['+988303000123456789', { kind: 'characters' }],
    ];
    for (const [input, problem] of cases) {
      expect(parseIccid(input), input).toEqual({ ok: false, problem });
    }
  });

  it('refuses non-ASCII digits', () => {
    expect(parseIccid('898830300012345678٩').ok).toBe(false);
  });
});

describe('iccidPrefix', () => {
  it('takes 1 to 20 ASCII digits', () => {
    expect(iccidPrefix(' 8988 '.trim())).toBe('8988');
    expect(iccidPrefix('8')).toBe('8');
    expect(iccidPrefix('')).toBeNull();
    expect(iccidPrefix('89a')).toBeNull();
    expect(iccidPrefix('1'.repeat(21))).toBeNull();
  });
});
