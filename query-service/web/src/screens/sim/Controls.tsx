import { useState } from 'react';
import { command, unwrap } from '../../api/client';
import type { SimView } from '../../api/types';
import { roleAtLeast } from '../../api/useSession';
import { ErrorNotice } from '../../components/ErrorNotice';
import { formatDateTime } from '../../lib/format';
import { conflictHint, Pair, useSimCommand } from './common';
import { ConfirmDialog } from './Dialog';

/** The last request of a provider control, as the SIM view's `controls` carries it. */
export interface ControlRequest {
  request_id: string;
  requested_at: string;
  enabled?: boolean;
  state: 'pending' | 'completed' | 'failed' | 'unknown';
  reason?: string | null;
  settled_at?: string | null;
}

export interface SimControls {
  auto_topup?: boolean | null;
  last_auto_topup?: ControlRequest | null;
  last_reset?: ControlRequest | null;
}

/** The SIM view's `controls` (typed loosely by the API document). */
export const controlsOf = (sim: SimView): SimControls => (sim.controls ?? {}) as SimControls;

/** Whether a control request of the SIM still waits for 1NCE. */
export const controlPending = (sim: SimView) => {
  const c = controlsOf(sim);
  return c.last_reset?.state === 'pending' || c.last_auto_topup?.state === 'pending';
};

type Action = 'reset' | 'auto-on' | 'auto-off';

const CONFIRM: Record<Action, { title: string; label: string; text: string }> = {
  reset: {
    title: 'Reset the connectivity of this SIM?',
    label: 'Reset connectivity',
    text: '1NCE drops its data session and network registration; the device attaches again by itself (its traffic stops for a moment).',
  },
  'auto-on': {
    title: 'Switch auto top-up on?',
    label: 'Switch auto top-up on',
    text: '1NCE then tops the data quota up by itself when it runs out, and bills each top-up.',
  },
  'auto-off': {
    title: 'Switch auto top-up off?',
    label: 'Switch auto top-up off',
    text: 'An exhausted data quota then stays exhausted until someone tops it up.',
  },
};

const STATE: Record<ControlRequest['state'], string> = {
  pending: 'waiting for 1NCE',
  completed: 'done',
  failed: 'failed',
  unknown: 'outcome unknown',
};

function Outcome({ request, testId }: { request: ControlRequest | null | undefined; testId: string }) {
  if (!request) return <dd data-testid={testId}>—</dd>;
  const cls = request.state === 'pending' ? 'pending' : request.state;
  return (
    <dd data-testid={testId}>
      <span className={`outcome ${cls}`}>{STATE[request.state]}</span>
      {request.enabled !== undefined ? ` (${request.enabled ? 'on' : 'off'})` : ''}, asked {formatDateTime(request.requested_at)}
      {request.reason ? <span className="small"> · 1NCE: {request.reason}</span> : null}
    </dd>
  );
}

/** Provider controls carried out at 1NCE: connectivity reset and auto top-up (operators). */
export function Controls({ sim }: { sim: SimView }) {
  const controls = controlsOf(sim);
  const [asking, setAsking] = useState<Action | null>(null);
  const send = useSimCommand(sim.iccid, (action: Action) => {
    const path = { params: { path: { iccid: sim.iccid } } };
    return unwrap(
      action === 'reset'
        ? command.POST('/api/v1/sims/{iccid}/connectivity-reset', path)
        : command.PUT('/api/v1/sims/{iccid}/auto-topup', { ...path, body: { enabled: action === 'auto-on' } }),
    );
  });
  const active = sim.status === 'active';
  const canCommand = roleAtLeast('operator') && sim.status !== 'terminated';
  const autoTopUp = controls.auto_topup == null ? 'not set through the platform' : controls.auto_topup ? 'on' : 'off';

  return (
    <section className="card" aria-labelledby="controls-title">
      <h2 id="controls-title">Provider controls</h2>
      <dl className="pairs">
        <Pair term="Auto top-up" value={autoTopUp} testId="auto-topup" />
        <div>
          <dt>Last auto top-up change</dt>
          <Outcome request={controls.last_auto_topup} testId="auto-topup-outcome" />
        </div>
        <div>
          <dt>Last connectivity reset</dt>
          <Outcome request={controls.last_reset} testId="reset-outcome" />
        </div>
      </dl>
      {controlPending(sim) && (
        <p className="progress" aria-live="polite">
          Waiting for 1NCE…
        </p>
      )}
      {canCommand && (
        <div className="actions" style={{ justifyContent: 'flex-start', marginTop: '0.75rem' }}>
          {active && (
            <button type="button" disabled={send.isPending || controls.last_reset?.state === 'pending'} onClick={() => setAsking('reset')}>
              Reset connectivity…
            </button>
          )}
          <button type="button" disabled={send.isPending} onClick={() => setAsking(controls.auto_topup ? 'auto-off' : 'auto-on')}>
            {controls.auto_topup ? 'Switch auto top-up off…' : 'Switch auto top-up on…'}
          </button>
        </div>
      )}
      {send.error && (
        <>
          <ErrorNotice error={send.error} what="send this request to 1NCE" />
          {conflictHint(send.error) && <p className="small">{conflictHint(send.error)}</p>}
        </>
      )}
      {asking && (
        <ConfirmDialog
          title={CONFIRM[asking].title}
          confirmLabel={CONFIRM[asking].label}
          busy={send.isPending}
          onClose={() => setAsking(null)}
          onConfirm={() => {
            send.mutate(asking);
            setAsking(null);
          }}
        >
          <p>
            SIM <span className="mono">{sim.iccid}</span>
            {sim.label ? ` (${sim.label})` : ''}: {CONFIRM[asking].text}
          </p>
        </ConfirmDialog>
      )}
    </section>
  );
}
