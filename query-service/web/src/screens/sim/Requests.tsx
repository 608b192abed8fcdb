import type { HistoryEvent, Outcome, SimRequest } from '../../lib/requests';
import { requestsOf } from '../../lib/requests';
import { formatDateTime } from '../../lib/format';
import type { History } from './queries';

const OUTCOME: Record<Outcome, string> = {
  pending: 'pending',
  completed: 'completed',
  failed: 'failed',
  unknown: 'outcome unknown',
};

const KIND: Record<SimRequest['kind'], string> = {
  activation: 'Activation',
  suspension: 'Suspension',
  'label-imei-lock': 'Label and IMEI lock',
  'top-up': 'Top-up',
  'connectivity-reset': 'Connectivity reset',
  'auto-top-up': 'Auto top-up',
  sms: 'SMS',
};

/** The SIM's requests to 1NCE and how each ended (the newest ten). */
export function Requests({ history }: { history: History | undefined }) {
  const requests = history ? requestsOf(history.events as unknown as HistoryEvent[]) : [];
  const shown = requests.slice(0, 10);
  return (
    <section className="card" aria-labelledby="requests-title">
      <h2 id="requests-title">Requests to 1NCE</h2>
      {!history && <p className="progress">Loading…</p>}
      {history && shown.length === 0 && <p className="muted">None yet.</p>}
      <ul className="requests" aria-live="polite">
        {shown.map((r) => (
          <li key={r.id}>
            <div className="row">
              <span>
                {KIND[r.kind]}
                {r.detail ? ` (${r.detail})` : ''}
              </span>
              <span className={`outcome ${r.outcome}`} data-testid="request-outcome">
                {OUTCOME[r.outcome]}
              </span>
            </div>
            <div className="muted small">
              {formatDateTime(r.requestedAt)}
              {r.actor ? ` by ${r.actor}` : ''}
              {r.settledAt ? ` · reported ${formatDateTime(r.settledAt)}` : ''}
            </div>
            {r.reason && <div className="small">Reason: {r.reason}</div>}
          </li>
        ))}
      </ul>
      {requests.length > shown.length && <p className="muted small">{requests.length - shown.length} older requests are in the timeline.</p>}
    </section>
  );
}
