import { useRef, useState } from 'react';
import type { StoredEvent } from '../../api/types';
import { ErrorNotice } from '../../components/ErrorNotice';
import { formatDateTime } from '../../lib/format';
import { eventPoint, Point } from './points';
import type { History } from './queries';
import { StatePanel } from './StatePanel';

const PAGE = 100;
type Filter = 'all' | 'sim' | 'quota' | 'sms';

/** Every event of the SIM (its own, its quotas', its messages'), newest first, with metadata. */
export function Timeline({ iccid, history, error }: { iccid: string; history: History | undefined; error: Error | null }) {
  const [shown, setShown] = useState(PAGE);
  const [filter, setFilter] = useState<Filter>('all');
  const [first, setFirst] = useState<Point | null>(null);
  const [second, setSecond] = useState<Point | null>(null);
  const panel = useRef<HTMLHeadingElement>(null);

  // Picking a point moves focus to what it shows.
  const pick = (set: (p: Point | null) => void) => (p: Point | null) => {
    set(p);
    if (p) requestAnimationFrame(() => panel.current?.focus());
  };

  const events = (history?.events ?? []).filter((e) => filter === 'all' || e.aggregate_type === filter).reverse();
  return (
    <section className="sim-section" aria-labelledby="timeline-title">
      <h2 id="timeline-title">Audit timeline</h2>
      <StatePanel ref={panel} iccid={iccid} first={first} second={second} onFirst={pick(setFirst)} onSecond={pick(setSecond)} />
      {error && <ErrorNotice error={error} what="load the SIM's history" />}
      {!history && !error && <p className="progress">Loading the history…</p>}
      {history && (
        <div className="row" style={{ marginBottom: '0.5rem' }}>
          <p className="muted small" aria-live="polite">
            {history.events.length} events
          </p>
          <label>
            Show
            <select value={filter} onChange={(e) => (setFilter(e.target.value as Filter), setShown(PAGE))}>
              <option value="all">all events</option>
              <option value="sim">the SIM's</option>
              <option value="quota">quotas'</option>
              <option value="sms">messages'</option>
            </select>
          </label>
        </div>
      )}
      <ol className="timeline" aria-label="Events, newest first">
        {events.slice(0, shown).map((e) => (
          <Entry
            key={e.position}
            event={e}
            current={first?.position === e.position || second?.position === e.position}
            onState={() => pick(setFirst)(eventPoint(e))}
            onCompare={first && first.position !== e.position ? () => pick(setSecond)(eventPoint(e)) : null}
          />
        ))}
      </ol>
      {events.length > shown && (
        <button type="button" onClick={() => setShown(shown + PAGE)} style={{ marginTop: '0.5rem' }}>
          Show {Math.min(PAGE, events.length - shown)} older events
        </button>
      )}
    </section>
  );
}

const meta = (e: StoredEvent, key: string) => {
  const value = (e.metadata as Record<string, unknown>)[key];
  return typeof value === 'string' ? value : null;
};

function Entry({ event: e, current, onState, onCompare }: { event: StoredEvent; current: boolean; onState: () => void; onCompare: (() => void) | null }) {
  const name = `${e.event_type} #${e.position}`;
  const fields: [string, string | null][] = [
    ['Actor', meta(e, 'actor')],
    ['Recorded', formatDateTime(e.recorded_at)],
    ['Position', String(e.position)],
    ['Aggregate', `${e.aggregate_type} ${e.aggregate_id} v${e.sequence}`],
    ['Command', meta(e, 'command_id')],
    ['Correlation', meta(e, 'correlation_id')],
    ['Causation', meta(e, 'causation_id')],
    ['Request', meta(e, 'request_id')],
  ];
  return (
    <li aria-current={current ? 'true' : undefined} data-event-type={e.event_type}>
      <div className="row">
        <strong>{e.event_type}</strong>
        <time dateTime={e.recorded_at} className="small muted">
          {e.recorded_at}
        </time>
      </div>
      <dl className="meta">
        {fields
          .filter(([, v]) => v)
          .map(([k, v]) => (
            <div key={k}>
              <dt>{k}</dt>
              <dd className={k === 'Recorded' || k === 'Actor' ? undefined : 'mono'}>{v}</dd>
            </div>
          ))}
      </dl>
      <details>
        <summary>Payload</summary>
        <pre>{JSON.stringify(e.payload, null, 2)}</pre>
      </details>
      <div className="actions" style={{ justifyContent: 'flex-start', marginTop: '0.4rem' }}>
        {/* The visible words begin the name (WCAG 2.5.3); the event they are about follows. */}
        <button type="button" onClick={onState}>
          State as of this event<span className="sr-only"> ({name})</span>
        </button>
        {onCompare && (
          <button type="button" onClick={onCompare}>
            Compare<span className="sr-only"> with {name}</span>
          </button>
        )}
      </div>
    </li>
  );
}
