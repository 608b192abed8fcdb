import { describe, expect, it } from 'vitest';
import type { FleetSummaryAsOf } from '../api/types';
import { fromLocalInput, instantAtPosition, instantOf, pastFigures, positionOf, POSITIONS, toLocalInput } from './timeline';

const span = { start: Date.UTC(2026, 0, 1), end: Date.UTC(2026, 0, 31) };

describe('the time slider', () => {
  it('maps the history onto a thousand positions, the last one live', () => {
    expect(positionOf(span, null)).toBe(POSITIONS);
    expect(positionOf(span, span.start)).toBe(0);
    expect(positionOf(span, span.start + (span.end - span.start) / 4)).toBe(250);
    expect(instantAtPosition(span, 0)).toBe(span.start);
    expect(instantAtPosition(span, 500)).toBe(span.start + (span.end - span.start) / 2);
    expect(instantAtPosition(span, POSITIONS)).toBeNull();
    // A history of seconds still has every position (no step swallows it).
    const short = { start: 0, end: 30_000 };
    expect(instantAtPosition(short, 999)).toBe(29_970);
    expect(positionOf(short, 29_970)).toBe(999);
  });

  it('keeps instants inside the history and turns its end into the live summary', () => {
    expect(instantOf(span, span.start - 1)).toBe(span.start);
    expect(instantOf(span, span.start + 1234.4)).toBe(span.start + 1234);
    expect(instantOf(span, span.end)).toBeNull();
    expect(instantOf(span, span.end + 60_000)).toBeNull();
    expect(instantOf(span, Number.NaN)).toBeNull();
  });

  it('reads and writes datetime-local values in local time', () => {
    const at = new Date(2026, 4, 17, 9, 5).getTime();
    expect(toLocalInput(at)).toBe('2026-05-17T09:05');
    expect(fromLocalInput('2026-05-17T09:05')).toBe(at);
    expect(fromLocalInput('2026-05-17T09:05:30')).toBe(at + 30_000);
    expect(fromLocalInput('2026-02-31T10:00')).toBeNull();
    expect(fromLocalInput('2026-05-17')).toBeNull();
    expect(fromLocalInput('')).toBeNull();
  });

  it('keeps the record’s nulls and their reasons, and has no live-only figures in the past', () => {
    const figures = pastFigures({
      as_of: '2026-01-02T00:00:00Z',
      sims_total: 3,
      sims_by_status: { inactive: 3, active: 0, suspended: 0, terminated: 0 },
      changes_pending: null,
      data: null,
      sms: null,
      sms_messages_by_status: null,
      as_of_position: 7,
      unknown: { data: 'before the fleet history began' },
    } as unknown as FleetSummaryAsOf);
    expect(figures.simsTotal).toBe(3);
    expect(figures.data).toBeNull();
    expect(figures.unknown).toEqual({ data: 'before the fleet history began' });
    expect(figures.oldestUsageReportAt).toBeNull();
    expect(figures.topupsFailed).toBeNull();
  });
});
