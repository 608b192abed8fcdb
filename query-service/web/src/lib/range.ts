// The usage chart's range: whole UTC days from `from` to `to` inclusive, within what the query
// API accepts per granularity (GET /sims/{iccid}/usage: hours over at most 31 days, days
// over at most 366).

export const DAY_MS = 86_400_000;
export const MAX_DAYS = { hour: 31, day: 366 } as const;

export interface UsageRange {
  /** RFC 3339 start (inclusive) and end (exclusive), or empty when there is an error. */
  from: string;
  to: string;
  error: string | null;
}

/** `from` and `to` are `YYYY-MM-DD` (as a date input gives them). */
export function usageRange(from: string, to: string, granularity: 'hour' | 'day'): UsageRange {
  const start = Date.parse(`${from}T00:00:00Z`);
  const end = Date.parse(`${to}T00:00:00Z`) + DAY_MS;
  if (!/^\d{4}-\d{2}-\d{2}$/.test(from) || !/^\d{4}-\d{2}-\d{2}$/.test(to) || Number.isNaN(start) || Number.isNaN(end)) {
    return { from: '', to: '', error: 'Choose a start and an end date.' };
  }
  if (end <= start) return { from: '', to: '', error: 'The start must not be after the end.' };
  const days = (end - start) / DAY_MS;
  if (days > MAX_DAYS[granularity]) {
    return { from: '', to: '', error: `Per ${granularity}, at most ${MAX_DAYS[granularity]} days can be shown (this range has ${days}).` };
  }
  return { from: new Date(start).toISOString(), to: new Date(end).toISOString(), error: null };
}
