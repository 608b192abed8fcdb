import { useEffect, useId, useState } from 'react';
import { formatDateTime } from '../lib/format';
import { fromLocalInput, instantAtPosition, instantOf, POSITIONS, positionOf, type Span, toLocalInput } from '../lib/timeline';

const DEBOUNCE_MS = 300;

/**
 * The ★ time slider: a range over the fleet's recorded history (a thousand positions, so a
 * step is about a thousandth of it however long it is) and a date-time field, both labelled
 * and keyboard-operable (arrows, Page Up/Down, Home/End on the range). The instant is
 * committed `DEBOUNCE_MS` after the last move, so dragging asks for one summary, not hundreds;
 * the end of the range, or "Now", is the live summary (`null`).
 */
export function TimeSlider({ span, value, onChange }: { span: Span; value: number | null; onChange: (asOf: number | null) => void }) {
  const id = useId();
  const [draft, setDraft] = useState<number | null>(value);
  // What the user typed in the date-time field, kept while it is not a whole date yet.
  const [typed, setTyped] = useState<string | null>(null);
  useEffect(() => setDraft(value), [value]);
  useEffect(() => {
    if (draft === value) return;
    const timer = setTimeout(() => onChange(draft), DEBOUNCE_MS);
    return () => clearTimeout(timer);
  }, [draft, value, onChange]);

  const shown = draft ?? span.end;
  const position = positionOf(span, draft);
  const moveTo = (next: number) => {
    setTyped(null);
    setDraft(instantAtPosition(span, next));
  };
  return (
    <section className="card wide time-slider" aria-labelledby={`${id}-title`}>
      <div className="row">
        <h2 id={`${id}-title`}>Fleet as of</h2>
        <p className="muted small" aria-live="polite" data-testid="as-of-mode">
          {draft === null ? 'Now (live)' : `As recorded at ${formatDateTime(new Date(draft).toISOString())}`}
        </p>
      </div>
      <div className="slider-row">
        <label className="grow">
          <span>Instant in the fleet's history</span>
          <input
            type="range"
            min={0}
            max={POSITIONS}
            step={1}
            value={position}
            aria-valuetext={draft === null ? 'now' : formatDateTime(new Date(draft).toISOString())}
            onChange={(e) => moveTo(Number(e.target.value))}
            onKeyDown={(e) => {
              // Page Up/Down: a tenth of the history.
              if (e.key !== 'PageUp' && e.key !== 'PageDown') return;
              e.preventDefault();
              moveTo(position + (e.key === 'PageUp' ? POSITIONS / 10 : -POSITIONS / 10));
            }}
          />
        </label>
        <label>
          <span>Date and time</span>
          <input
            type="datetime-local"
            min={toLocalInput(span.start)}
            max={toLocalInput(span.end)}
            value={typed ?? toLocalInput(shown)}
            onChange={(e) => {
              const at = fromLocalInput(e.target.value);
              if (at === null) return setTyped(e.target.value);
              setTyped(null);
              setDraft(instantOf(span, at));
            }}
          />
        </label>
        <button type="button" onClick={() => moveTo(POSITIONS)} disabled={draft === null}>
          Now
        </button>
      </div>
      <p className="muted small">
        From the first recorded event ({formatDateTime(new Date(span.start).toISOString())}) to now.
      </p>
    </section>
  );
}
