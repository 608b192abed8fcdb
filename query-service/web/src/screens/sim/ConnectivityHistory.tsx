import { useState } from 'react';
import type { ConnectivityChange } from '../../api/types';
import { ErrorNotice } from '../../components/ErrorNotice';
import { formatDateTime } from '../../lib/format';
import { useConnectivityHistory } from './queries';

const SHOWN = 20;

/**
 * Where the SIM has been: every network, country, radio access and IP address change the
 * provider showed (polled network events or the Data Streamer), newest first. An auditor reads
 * the same rows from `GET /api/v1/sims/{iccid}/connectivity`.
 */
export function ConnectivityHistory({ iccid }: { iccid: string }) {
  const history = useConnectivityHistory(iccid);
  const [shown, setShown] = useState(SHOWN);
  const changes = [...(history.data?.changes ?? [])].reverse();
  return (
    <section className="card sim-section" aria-labelledby="connectivity-history-title">
      <h2 id="connectivity-history-title">Connectivity history</h2>
      {history.error && <ErrorNotice error={history.error} what="load the connectivity history" />}
      {history.isPending && <p className="progress">Loading…</p>}
      {history.data && (
        <p className="muted small" aria-live="polite" data-testid="connectivity-count">
          {changes.length === 0
            ? 'No connectivity changes recorded yet.'
            : `${changes.length} change${changes.length > 1 ? 's' : ''}${history.data.truncated ? ' (the most recent ones)' : ''}`}
        </p>
      )}
      {changes.length > 0 && (
        <div className="table-wrap" tabIndex={0} role="region" aria-label="Connectivity changes, newest first">
          <table className="diff" data-testid="connectivity-history">
            <thead>
              <tr>
                <th scope="col">Seen at the provider</th>
                <th scope="col">Network</th>
                <th scope="col">Country</th>
                <th scope="col">Radio access</th>
                <th scope="col">IP address</th>
                <th scope="col">Recorded by</th>
              </tr>
            </thead>
            <tbody>
              {changes.slice(0, shown).map((c) => (
                <Row key={c.position} change={c} />
              ))}
            </tbody>
          </table>
        </div>
      )}
      {changes.length > shown && (
        <button type="button" onClick={() => setShown(shown + SHOWN)} style={{ marginTop: '0.5rem' }}>
          Show {Math.min(SHOWN, changes.length - shown)} older changes
        </button>
      )}
    </section>
  );
}

function Row({ change: c }: { change: ConnectivityChange }) {
  return (
    <tr data-position={c.position}>
      <td>
        <time dateTime={c.observed_at}>{formatDateTime(c.observed_at)}</time>
      </td>
      <td>{c.network ?? '—'}</td>
      <td>{c.country ?? '—'}</td>
      <td>{c.rat ?? '—'}</td>
      <td className="mono">{c.ip_address ?? '—'}</td>
      <td>{c.actor ?? '—'}</td>
    </tr>
  );
}
