import { keepPreviousData, useQuery } from '@tanstack/react-query';
import { useEffect, useMemo, useState } from 'react';
import { Link, useLocation, useSearch } from 'wouter';
import { query, unwrap } from '../api/client';
import type { SimView } from '../api/types';
import { BulkActions } from '../components/BulkActions';
import { ErrorNotice } from '../components/ErrorNotice';
import { CursorSteps } from '../components/Pager';
import { filterOf } from '../lib/bulk';
import { formatAge, formatBytes, formatCount, formatDateTime } from '../lib/format';
import {
  Column,
  COLUMNS,
  fromSearch,
  listParams,
  ListState,
  loadColumns,
  PAGE_SIZES,
  QUOTA_STATES,
  QuotaState,
  saveColumns,
  SEARCH_FIELDS,
  SearchField,
  searchProblem,
  SortKey,
  SORT_KEYS,
  STATUSES,
  toSearch,
} from '../lib/simList';

const SORTABLE = new Set<string>(SORT_KEYS);

function cell(sim: SimView, column: Column): React.ReactNode {
  switch (column) {
    case 'iccid':
      return <Link href={`/sims/${sim.iccid}`}>{sim.iccid}</Link>;
    case 'status':
      return (
        <>
          <span className={`badge ${sim.status}`}>{sim.status}</span>
          {sim.pending_change && <span className="muted small"> ({sim.pending_change} pending)</span>}
        </>
      );
    case 'tags':
      return sim.tags.join(', ');
    case 'data':
      return sim.data_remaining === null || sim.data_remaining === undefined ? '—' : formatBytes(sim.data_remaining);
    case 'sms':
      return formatCount(sim.sms_remaining);
    case 'last_seen_at':
      return <time dateTime={sim.last_seen_at ?? undefined}>{formatAge(sim.last_seen_at)}</time>;
    case 'registered_at':
      return formatDateTime(sim.registered_at);
    default:
      return sim[column] ?? '—';
  }
}

/**
 * The fleet's SIMs, searched and filtered on the server and paged by keyset cursor (as fast on
 * page 2,000 as on page 1). The search lives in the address, so a reload or a shared link
 * shows the same list.
 */
export function SimTable() {
  const search = useSearch();
  const [, navigate] = useLocation();
  const [state, setState] = useState<ListState>(() => fromSearch(search));
  // What the server is asked: the typed text, once the typing pauses.
  const [asked, setAsked] = useState(state);
  const [cursors, setCursors] = useState<string[]>(['']);
  const [columns, setColumns] = useState<Column[]>(() => loadColumns(localStorage));
  const [selected, setSelected] = useState<Set<string>>(() => new Set());

  useEffect(() => {
    const timer = setTimeout(() => {
      setAsked(state);
      setCursors(['']);
      history.replaceState(history.state, '', `/sims${toSearch(state)}`);
    }, 250);
    return () => clearTimeout(timer);
  }, [state]);

  const cursor = cursors[cursors.length - 1] ?? '';
  const params = useMemo(() => listParams(asked, cursor), [asked, cursor]);
  const list = useQuery({
    queryKey: ['sims', params],
    queryFn: async () => {
      const result = await query.GET('/api/v1/sims', { params: { query: params } });
      const sims = await unwrap(Promise.resolve(result));
      const headers = result.response.headers;
      return {
        sims,
        total: Number(headers.get('X-Total-Count') ?? sims.length),
        exact: headers.get('X-Total-Count-Exact') !== 'false',
        next: headers.get('X-Next-Cursor'),
      };
    },
    placeholderData: keepPreviousData,
  });

  const update = (change: Partial<ListState>) => setState((s) => ({ ...s, ...change }));
  const problem = searchProblem(state);
  const sims = list.data?.sims ?? [];
  const first = (cursors.length - 1) * asked.pageSize;
  const pageSelected = sims.length > 0 && sims.every((s) => selected.has(s.iccid));

  const toggle = (iccid: string) =>
    setSelected((old) => {
      const next = new Set(old);
      if (!next.delete(iccid)) next.add(iccid);
      return next;
    });
  const togglePage = () =>
    setSelected((old) => {
      const next = new Set(old);
      for (const sim of sims) {
        if (pageSelected) next.delete(sim.iccid);
        else next.add(sim.iccid);
      }
      return next;
    });
  const sortBy = (key: SortKey) =>
    update({ sort: key, descending: state.sort === key ? !state.descending : false });

  return (
    <>
      <h1>SIMs</h1>
      <form className="filters" role="search" onSubmit={(e) => e.preventDefault()}>
        <label>
          Search by
          <select value={state.field} onChange={(e) => update({ field: e.target.value as SearchField })}>
            {Object.entries(SEARCH_FIELDS).map(([field, label]) => (
              <option key={field} value={field}>
                {label}
              </option>
            ))}
          </select>
        </label>
        <label className="grow">
          Search
          <input
            type="search"
            name="q"
            value={state.text}
            inputMode={state.field === 'label' ? 'text' : 'numeric'}
            aria-invalid={problem ? true : undefined}
            aria-describedby={problem ? 'search-problem' : undefined}
            onChange={(e) => update({ text: e.target.value })}
          />
          {problem && (
            <span id="search-problem" className="field-error">
              {problem}
            </span>
          )}
        </label>
        <label>
          Tags (all of)
          <input name="tags" value={state.tags} placeholder="e.g. fleet-a, berlin" onChange={(e) => update({ tags: e.target.value })} />
        </label>
        <fieldset className="statuses">
          <legend>Status</legend>
          {STATUSES.map((status) => (
            <label key={status}>
              <input
                type="checkbox"
                checked={state.statuses.includes(status)}
                onChange={(e) =>
                  update({ statuses: e.target.checked ? [...state.statuses, status] : state.statuses.filter((s) => s !== status) })
                }
              />
              {status}
            </label>
          ))}
        </fieldset>
        <fieldset className="statuses">
          <legend>Quota</legend>
          {(Object.keys(QUOTA_STATES) as QuotaState[]).map((quota) => (
            <label key={quota}>
              <input
                type="checkbox"
                checked={state.quotaStates.includes(quota)}
                onChange={(e) =>
                  update({ quotaStates: e.target.checked ? [...state.quotaStates, quota] : state.quotaStates.filter((q) => q !== quota) })
                }
              />
              {QUOTA_STATES[quota]}
            </label>
          ))}
        </fieldset>
        <details className="columns">
          <summary>Columns</summary>
          <fieldset>
            <legend className="sr-only">Columns shown</legend>
            {(Object.keys(COLUMNS) as Column[]).map((column) => (
              <label key={column}>
                <input
                  type="checkbox"
                  checked={columns.includes(column)}
                  disabled={column === 'iccid'}
                  onChange={(e) =>
                    setColumns(saveColumns(localStorage, e.target.checked ? [...columns, column] : columns.filter((c) => c !== column)))
                  }
                />
                {COLUMNS[column]}
              </label>
            ))}
          </fieldset>
        </details>
      </form>

      {list.error && <ErrorNotice error={list.error} what="load the SIMs" />}

      <div className="row">
        <p aria-live="polite" data-testid="list-status">
          {list.isPending
            ? 'Loading SIMs…'
            : sims.length === 0
              ? 'No SIM matches.'
              : `${formatCount(first + 1)}–${formatCount(first + sims.length)} of ${list.data?.exact ? '' : 'about '}${formatCount(list.data?.total)}`}
        </p>
        {selected.size > 0 && (
          <p className="selection" data-testid="selection">
            {formatCount(selected.size)} selected{' '}
            <button type="button" className="link" onClick={() => setSelected(new Set())}>
              Clear selection
            </button>
          </p>
        )}
      </div>

      <BulkActions
        selected={[...selected]}
        filter={filterOf(params)}
        matching={list.data ? { total: list.data.total, exact: list.data.exact } : null}
        onSubmitted={() => setSelected(new Set())}
      />

      <div className="table-wrap">
        <table className="sims" aria-busy={list.isFetching}>
          <caption className="sr-only">SIMs, sorted by {state.sort.replace(/_/g, ' ')}</caption>
          <thead>
            <tr>
              <th scope="col" className="check">
                <input type="checkbox" aria-label="Select every SIM on this page" checked={pageSelected} onChange={togglePage} />
              </th>
              {columns.map((column) => {
                const sorted = asked.sort === column;
                return (
                  <th key={column} scope="col" aria-sort={sorted ? (asked.descending ? 'descending' : 'ascending') : undefined}>
                    {SORTABLE.has(column) ? (
                      <button type="button" className="sort" onClick={() => sortBy(column as SortKey)}>
                        {COLUMNS[column]}
                        <span aria-hidden="true">{sorted ? (asked.descending ? ' ▼' : ' ▲') : ''}</span>
                      </button>
                    ) : (
                      COLUMNS[column]
                    )}
                  </th>
                );
              })}
            </tr>
          </thead>
          <tbody>
            {sims.map((sim) => (
              <tr
                key={sim.iccid}
                className={selected.has(sim.iccid) ? 'selected' : undefined}
                onClick={(e) => {
                  // A click on the row opens the SIM; the checkbox and the link keep their own.
                  if (!(e.target as HTMLElement).closest('a, input, button')) navigate(`/sims/${sim.iccid}`);
                }}
              >
                <td className="check">
                  <input type="checkbox" aria-label={`Select ${sim.iccid}`} checked={selected.has(sim.iccid)} onChange={() => toggle(sim.iccid)} />
                </td>
                {columns.map((column) => (
                  <td key={column} data-label={COLUMNS[column]}>
                    {cell(sim, column)}
                  </td>
                ))}
              </tr>
            ))}
          </tbody>
        </table>
      </div>

      <nav className="pager" aria-label="Pages">
        <label>
          Per page
          <select value={state.pageSize} onChange={(e) => update({ pageSize: Number(e.target.value) })}>
            {PAGE_SIZES.map((size) => (
              <option key={size}>{size}</option>
            ))}
          </select>
        </label>
        <button type="button" disabled={cursors.length === 1} onClick={() => setCursors([''])}>
          First
        </button>
        <CursorSteps cursors={cursors} onCursors={setCursors} next={list.data?.next} stale={list.isPlaceholderData}>
          <span>Page {cursors.length}</span>
        </CursorSteps>
      </nav>
    </>
  );
}
