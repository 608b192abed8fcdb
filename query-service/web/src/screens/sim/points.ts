import type { StoredEvent } from '../../api/types';

/** A point of the SIM's history: right after an event, or an instant the user typed. */
export interface Point {
  /** RFC 3339: what `GET /sims/{iccid}/state?as_of=` takes. */
  at: string;
  /** The event's position, when the point is an event. */
  position: number | null;
  label: string;
}

export const eventPoint = (e: StoredEvent): Point => ({ at: e.recorded_at, position: e.position, label: `${e.event_type} (#${e.position})` });

export const instantPoint = (at: string): Point => ({ at, position: null, label: new Date(at).toISOString().replace('.000Z', 'Z') });

/** `datetime-local` input value (local time, no zone) to RFC 3339, or null. */
export function fromLocalInput(value: string): string | null {
  if (!value) return null;
  const ms = Date.parse(value);
  return Number.isNaN(ms) ? null : new Date(ms).toISOString();
}
