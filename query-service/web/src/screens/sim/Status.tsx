import { useState } from 'react';
import { command, unwrap } from '../../api/client';
import type { SimView } from '../../api/types';
import { roleAtLeast } from '../../api/useSession';
import { ErrorNotice } from '../../components/ErrorNotice';
import { formatDateTime } from '../../lib/format';
import { conflictHint, ifMatch, Pair, useSimCommand } from './common';
import { ConfirmDialog } from './Dialog';

type Action = 'activate' | 'suspend' | 'terminate';

const CONFIRM: Record<Action, { title: string; label: string; text: string }> = {
  activate: { title: 'Activate this SIM?', label: 'Activate', text: '1NCE enables it: it can transfer data and may be billed.' },
  suspend: { title: 'Suspend this SIM?', label: 'Suspend', text: '1NCE disables it: it stops transferring data until activated again.' },
  terminate: {
    title: 'Terminate this SIM?',
    label: 'Terminate',
    text: 'It is retired for good: no command is accepted for it afterwards, only its history can be read. This cannot be undone.',
  },
};

/** The SIM's status, what waits at 1NCE, and the lifecycle commands (operators and admins). */
export function Status({ sim }: { sim: SimView }) {
  const [asking, setAsking] = useState<Action | null>(null);
  const change = useSimCommand(sim.iccid, (action: Action) => {
    const path = { params: { path: { iccid: sim.iccid } }, ...ifMatch(sim.version) };
    return unwrap(
      action === 'terminate' ? command.DELETE('/api/v1/sims/{iccid}', path) : command.POST(`/api/v1/sims/{iccid}/${action}`, path),
    );
  });
  const live = sim.status !== 'terminated';
  const actions: Action[] = !live || sim.pending_change ? [] : [sim.status === 'active' ? 'suspend' : 'activate', 'terminate'];
  const canCommand = roleAtLeast('operator');

  return (
    <section className="card" aria-labelledby="status-title">
      <h2 id="status-title">Status</h2>
      <p className="big">
        <span className={`badge ${sim.status}`} data-testid="sim-status">
          {sim.status}
        </span>
      </p>
      <dl className="pairs">
        <Pair term="Pending at 1NCE" value={sim.pending_change} testId="sim-pending" />
        <Pair term="As 1NCE reports it" value={sim.provider_status} />
        <Pair term="Updated" value={formatDateTime(sim.updated_at)} />
        <Pair term="Version" value={String(sim.version)} />
      </dl>
      {sim.pending_change && (
        <p className="progress" aria-live="polite">
          Waiting for 1NCE to confirm the {sim.pending_change}…
        </p>
      )}
      {canCommand && actions.length > 0 && (
        <div className="actions" style={{ justifyContent: 'flex-start', marginTop: '0.75rem' }}>
          {actions.map((action) => (
            <button key={action} type="button" className={action === 'terminate' ? 'danger' : undefined} disabled={change.isPending} onClick={() => setAsking(action)}>
              {CONFIRM[action].label}
            </button>
          ))}
        </div>
      )}
      {change.isPending && (
        <p className="progress" aria-live="polite">
          Sending and waiting for the read model…
        </p>
      )}
      {change.error && (
        <>
          <ErrorNotice error={change.error} what={`${change.variables ?? 'change'} this SIM`} />
          {conflictHint(change.error) && <p className="small">{conflictHint(change.error)}</p>}
        </>
      )}
      {asking && (
        <ConfirmDialog
          title={CONFIRM[asking].title}
          confirmLabel={CONFIRM[asking].label}
          danger={asking === 'terminate'}
          busy={change.isPending}
          onClose={() => setAsking(null)}
          onConfirm={() => {
            change.mutate(asking);
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
