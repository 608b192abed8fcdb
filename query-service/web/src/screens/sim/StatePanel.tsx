import { useQuery } from '@tanstack/react-query';
import { forwardRef, useState } from 'react';
import { ApiError, query, unwrap } from '../../api/client';
import type { SimView } from '../../api/types';
import { ErrorNotice } from '../../components/ErrorNotice';
import { ColumnHeads } from '../../components/ListTable';
import { BOOKKEEPING, diffStates, showValue } from '../../lib/diff';
import { formatDateTime } from '../../lib/format';
import { fromLocalInput, instantPoint, Point } from './points';

/** The SIM as of a point: null when it was not registered yet. */
function useStateAt(iccid: string, point: Point | null) {
  return useQuery({
    queryKey: ['sim', iccid, 'state', point?.at],
    enabled: point !== null,
    staleTime: Infinity,
    queryFn: async (): Promise<SimView | null> => {
      try {
        return await unwrap(query.GET('/api/v1/sims/{iccid}/state', { params: { path: { iccid }, query: { as_of: point!.at } } }));
      } catch (error) {
        if (error instanceof ApiError && error.status === 404) return null;
        throw error;
      }
    },
  });
}

interface Props {
  iccid: string;
  first: Point | null;
  second: Point | null;
  onFirst: (p: Point | null) => void;
  onSecond: (p: Point | null) => void;
}

/** "State as of" a point, and what changed between two points. */
export const StatePanel = forwardRef<HTMLHeadingElement, Props>(function StatePanel({ iccid, first, second, onFirst, onSecond }, heading) {
  const a = useStateAt(iccid, first);
  const b = useStateAt(iccid, second);
  return (
    <section className="card sim-section" aria-labelledby="state-title">
      <h3 id="state-title" ref={heading} tabIndex={-1}>
        State as of {first ? first.label : '…'}
      </h3>
      <p className="muted small">Pick an event in the timeline below (“State as of this event”, “Compare”), or type an instant.</p>
      <div className="points">
        <InstantPicker legend="State as of an instant" button="Show state" point={first} onPick={onFirst} />
        <InstantPicker legend="Compare with an instant" button="Compare" point={second} onPick={onSecond} />
      </div>
      {first && <StateTable point={first} state={a.data} error={a.error} pending={a.isFetching} />}
      {first && second && (
        <Diff first={first} second={second} a={a.data} b={b.data} error={b.error} pending={b.isFetching || a.isFetching} onClear={() => onSecond(null)} />
      )}
    </section>
  );
});

function InstantPicker({ legend, button, point, onPick }: { legend: string; button: string; point: Point | null; onPick: (p: Point | null) => void }) {
  const [value, setValue] = useState('');
  const at = fromLocalInput(value);
  return (
    <form
      onSubmit={(e) => {
        e.preventDefault();
        if (at) onPick(instantPoint(at));
      }}
    >
      <fieldset>
        <legend>{legend}</legend>
        <label>
          Instant (your time zone)
          <input type="datetime-local" step={1} value={value} onChange={(e) => setValue(e.target.value)} />
        </label>
        <div className="actions" style={{ justifyContent: 'flex-start' }}>
          <button type="submit" disabled={!at}>
            {button}
          </button>
          {point && (
            <button type="button" onClick={() => onPick(null)}>
              Clear
            </button>
          )}
        </div>
      </fieldset>
    </form>
  );
}

function StateTable({ point, state, error, pending }: { point: Point; state: SimView | null | undefined; error: Error | null; pending: boolean }) {
  if (error) return <ErrorNotice error={error} what="rebuild the SIM's state" />;
  if (pending && state === undefined) return <p className="progress">Replaying the history…</p>;
  if (state === null) return <p role="status">The SIM was not registered yet at {formatDateTime(point.at)}.</p>;
  if (!state) return null;
  const fields = Object.entries(state).filter(([k]) => !BOOKKEEPING.has(k) || k === 'version');
  return (
    <table className="diff" data-testid="state-as-of" aria-label={`The SIM as of ${point.label}`}>
      <ColumnHeads columns={['Field', `Value at ${formatDateTime(point.at)}`]} />
      <tbody>
        {fields.map(([field, value]) => (
          <tr key={field} data-field={field}>
            <th scope="row">{field}</th>
            <td>{showValue(value)}</td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}

function Diff(props: { first: Point; second: Point; a: SimView | null | undefined; b: SimView | null | undefined; error: Error | null; pending: boolean; onClear: () => void }) {
  const { first, second, a, b, error, pending } = props;
  // Earlier on the left, whichever was picked first.
  const [from, to, before, after] = Date.parse(first.at) <= Date.parse(second.at) ? [first, second, a, b] : [second, first, b, a];
  const changes = before !== undefined && after !== undefined ? diffStates(before, after) : null;
  return (
    <div style={{ marginTop: '1rem' }}>
      <div className="row">
        <h3 id="diff-title">
          Changes from {from.label} to {to.label}
        </h3>
        <button type="button" onClick={props.onClear}>
          Stop comparing
        </button>
      </div>
      {error && <ErrorNotice error={error} what="rebuild the SIM's state" />}
      {pending && changes === null && <p className="progress">Replaying the history…</p>}
      {changes?.length === 0 && <p role="status">Nothing changed between these two points.</p>}
      {changes && changes.length > 0 && (
        <table className="diff" aria-labelledby="diff-title" data-testid="state-diff">
          <ColumnHeads columns={['Field', 'Before', 'After']} />
          <tbody>
            {changes.map((c) => (
              <tr key={c.field} data-field={c.field}>
                <th scope="row">{c.field}</th>
                <td>{showValue(c.before)}</td>
                <td>{showValue(c.after)}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </div>
  );
}
