// ICCIDs as the domain crate (crates/domain/src/ids.rs) takes them: 19 digits, or the 20-digit
// form printed on cards when its Luhn check digit is right (normalised to 19 digits).

export type IccidProblem =
  | { kind: 'characters' }
  | { kind: 'length'; length: number }
  | { kind: 'check-digit'; expected: number; found: number };

export type IccidResult = { ok: true; iccid: string } | { ok: false; problem: IccidProblem };

/** The Luhn check digit of a string of ASCII digits. */
export function luhnCheckDigit(payload: string): number {
  let sum = 0;
  for (let i = 0; i < payload.length; i++) {
    const d = payload.charCodeAt(payload.length - 1 - i) - 48;
    const v = i % 2 === 0 ? d * 2 : d;
    sum += v > 9 ? v - 9 : v;
  }
  return (10 - (sum % 10)) % 10;
}

const ASCII_DIGITS = /^[0-9]+$/;

export function parseIccid(input: string): IccidResult {
  const s = input.trim();
  if (!ASCII_DIGITS.test(s)) return { ok: false, problem: { kind: 'characters' } };
  if (s.length === 19) return { ok: true, iccid: s };
  if (s.length === 20) {
    const payload = s.slice(0, 19);
    const expected = luhnCheckDigit(payload);
    const found = s.charCodeAt(19) - 48;
    return expected === found
      ? { ok: true, iccid: payload }
      : { ok: false, problem: { kind: 'check-digit', expected, found } };
  }
  return { ok: false, problem: { kind: 'length', length: s.length } };
}

export function describeIccidProblem(problem: IccidProblem): string {
  switch (problem.kind) {
    case 'characters':
      return 'An ICCID has only the digits 0 to 9.';
    case 'length':
      return `An ICCID has 19 digits, or 20 with the check digit (this has ${problem.length}).`;
    case 'check-digit':
      return `The check digit should be ${problem.expected}, not ${problem.found}: a digit is mistyped.`;
  }
}

/** A search prefix for the list's `iccid` filter: 1 to 20 ASCII digits, else null. */
export function iccidPrefix(input: string): string | null {
  const s = input.trim();
  return s.length >= 1 && s.length <= 20 && ASCII_DIGITS.test(s) ? s : null;
}
