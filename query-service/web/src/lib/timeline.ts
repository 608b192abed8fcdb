// The fleet overview's time slider: instants as slider positions and datetime-local values,
// and the summary of either mode (now, or as of an instant) as one shape for the screen.
import type { FleetSummary, FleetSummaryAsOf, QuotaTotals } from '../api/types';

/** The fleet's recorded history, in epoch milliseconds: the first event to now. */
export interface Span {
  start: number;
  end: number;
}

/** The slider's positions: about a thousandth of the history each; the last is now (live). */
export const POSITIONS = 1000;

/** The slider position of an instant (`null`, live: the last). */
export function positionOf(span: Span, at: number | null): number {
  if (at === null || span.end <= span.start) return POSITIONS;
  return Math.min(POSITIONS, Math.max(0, Math.round(((at - span.start) / (span.end - span.start)) * POSITIONS)));
}

/** The instant at a slider position; the last position is live (`null`). */
export function instantAtPosition(span: Span, position: number): number | null {
  if (!Number.isFinite(position) || position >= POSITIONS) return null;
  return instantOf(span, span.start + (Math.max(0, position) / POSITIONS) * (span.end - span.start));
}

/** A typed instant kept inside the span; `null` (live) at or past its end. */
export function instantOf(span: Span, value: number): number | null {
  if (!Number.isFinite(value) || value >= span.end) return null;
  return Math.max(span.start, Math.round(value));
}

const pad = (n: number) => String(n).padStart(2, '0');

/** The value of an `<input type="datetime-local">` (local time, minutes) for an instant. */
export function toLocalInput(ms: number): string {
  const d = new Date(ms);
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T${pad(d.getHours())}:${pad(d.getMinutes())}`;
}

/** The instant of a datetime-local value (local time), or null when it is not one. */
export function fromLocalInput(value: string): number | null {
  const match = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2})(?::(\d{2}))?$/.exec(value);
  if (!match) return null;
  const [y, mo, d, h, mi, s] = match.slice(1).map((part) => Number(part ?? 0)) as [number, number, number, number, number, number];
  const date = new Date(y, mo - 1, d, h, mi, s);
  // Reject dates the constructor rolled over (31 February).
  return date.getMonth() === mo - 1 && date.getDate() === d ? date.getTime() : null;
}

/** What the screen shows: the live summary or the summary as of an instant, nulls explained. */
export interface Figures {
  asOf: string | null;
  simsTotal: number | null;
  simsByStatus: Record<string, number> | null;
  changesPending: number | null;
  data: QuotaTotals | null;
  sms: QuotaTotals | null;
  smsByStatus: Record<string, number> | null;
  /** Live only (the record's summary has no such figures). */
  topupsFailed: number | null;
  topupsOutcomeUnknown: number | null;
  oldestUsageReportAt: string | null;
  simsWithoutUsageReport: number | null;
  position: number;
  unknown: Record<string, string>;
}

export function liveFigures(s: FleetSummary): Figures {
  return {
    asOf: null,
    simsTotal: s.sims_total,
    simsByStatus: s.sims_by_status as Record<string, number>,
    changesPending: s.changes_pending,
    data: s.data,
    sms: s.sms,
    smsByStatus: s.sms_messages_by_status as Record<string, number>,
    topupsFailed: s.topups_failed ?? 0,
    topupsOutcomeUnknown: s.topups_outcome_unknown ?? 0,
    oldestUsageReportAt: s.oldest_usage_report_at ?? null,
    simsWithoutUsageReport: s.sims_without_usage_report ?? 0,
    position: s.as_of_position,
    unknown: {},
  };
}

export function pastFigures(s: FleetSummaryAsOf): Figures {
  return {
    asOf: s.as_of,
    simsTotal: s.sims_total ?? null,
    simsByStatus: (s.sims_by_status ?? null) as Record<string, number> | null,
    changesPending: s.changes_pending ?? null,
    data: s.data ?? null,
    sms: s.sms ?? null,
    smsByStatus: (s.sms_messages_by_status ?? null) as Record<string, number> | null,
    topupsFailed: null,
    topupsOutcomeUnknown: null,
    oldestUsageReportAt: null,
    simsWithoutUsageReport: null,
    position: s.as_of_position,
    unknown: s.unknown as Record<string, string>,
  };
}
