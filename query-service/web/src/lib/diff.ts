// What changed between two states of a SIM (the timeline's "compare"): field by field, with
// arrays and objects compared by value, and an absent field the same as null.

export interface FieldChange {
  field: string;
  before: unknown;
  after: unknown;
}

/** Book-keeping fields that change with every event; shown apart from the SIM's own fields. */
export const BOOKKEEPING = new Set(['version', 'last_position', 'updated_at', 'projection']);

export function sameValue(a: unknown, b: unknown): boolean {
  if ((a === null || a === undefined) && (b === null || b === undefined)) return true;
  if (a === b) return true;
  if (typeof a !== 'object' || typeof b !== 'object' || a === null || b === null) return false;
  if (Array.isArray(a) !== Array.isArray(b)) return false;
  if (Array.isArray(a) && Array.isArray(b)) return a.length === b.length && a.every((x, i) => sameValue(x, b[i]));
  const ra = a as Record<string, unknown>;
  const rb = b as Record<string, unknown>;
  const keys = new Set([...Object.keys(ra), ...Object.keys(rb)]);
  return [...keys].every((k) => sameValue(ra[k], rb[k]));
}

/**
 * The fields whose values differ between `before` and `after`, in field-name order, the
 * book-keeping fields (see BOOKKEEPING) last. Either side may be null (the SIM did not exist).
 */
export function diffStates(before: object | null, after: object | null): FieldChange[] {
  const a = (before ?? {}) as Record<string, unknown>;
  const b = (after ?? {}) as Record<string, unknown>;
  const fields = [...new Set([...Object.keys(a), ...Object.keys(b)])];
  return fields
    .filter((field) => !sameValue(a[field], b[field]))
    .sort((x, y) => Number(BOOKKEEPING.has(x)) - Number(BOOKKEEPING.has(y)) || x.localeCompare(y))
    .map((field) => ({ field, before: a[field] ?? null, after: b[field] ?? null }));
}

/** A value as the diff table shows it. */
export function showValue(value: unknown): string {
  if (value === null || value === undefined) return '—';
  if (Array.isArray(value)) return value.length ? value.map(showValue).join(', ') : '(none)';
  if (typeof value === 'object') return JSON.stringify(value);
  return String(value);
}
