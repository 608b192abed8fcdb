import { useRef, useState } from 'react';
import { command, unwrap } from '../../api/client';
import type { QuotaRow } from '../../api/types';
import { useModal } from '../../components/Dialog';
import { ErrorNotice } from '../../components/ErrorNotice';
import { useSimCommand } from './common';
import { formatQuota, QUOTA_TITLE, QuotaKind } from './Quotas';

type Step = 'choose' | 'waiting' | 'done';

const SETTLED: Record<string, string> = {
  completed: 'Done',
  failed: 'The top-up failed',
  unknown: 'Whether 1NCE made the top-up is unknown (look at the provider’s portal)',
};

/**
 * Top up one quota with 1NCE's standard top-up product: choose, confirm, then wait until the
 * read model shows the request and 1NCE's answer, and show the new quota.
 */
export function TopUpDialog({ iccid, quotas, onClose }: { iccid: string; quotas: QuotaRow[]; onClose: () => void }) {
  const dialog = useRef<HTMLDialogElement>(null);
  const [kind, setKind] = useState<QuotaKind>('data');
  const [paymentMethod, setPaymentMethod] = useState('');
  const [before, setBefore] = useState<QuotaRow | null>(null);
  const topUp = useSimCommand(iccid, () =>
    unwrap(command.POST('/api/v1/sims/{iccid}/topup', { params: { path: { iccid } }, body: { quota: kind, payment_method: paymentMethod.trim() || null } })),
  );
  const current = quotas.find((q) => q.kind === kind) ?? null;
  const step: Step = !topUp.isSuccess ? 'choose' : current?.pending_topup_id || current?.last_position === before?.last_position ? 'waiting' : 'done';

  useModal(dialog);

  const submit = () => {
    setBefore(current);
    topUp.mutate(undefined);
  };

  return (
    <dialog ref={dialog} className="sim-dialog" aria-labelledby="topup-title" onCancel={(e) => (topUp.isPending ? e.preventDefault() : onClose())}>
      <form
        onSubmit={(e) => {
          e.preventDefault();
          if (step === 'choose') submit();
          else onClose();
        }}
      >
        <h2 id="topup-title">Top up SIM {iccid}</h2>
        {step === 'choose' && (
          <>
            <fieldset disabled={topUp.isPending}>
              <legend>Quota</legend>
              {(['data', 'sms'] as const).map((k) => (
                <label key={k}>
                  <input type="radio" name="quota" value={k} checked={kind === k} onChange={() => setKind(k)} />
                  {QUOTA_TITLE[k]}
                </label>
              ))}
            </fieldset>
            <label>
              Payment method (optional)
              <input value={paymentMethod} onChange={(e) => setPaymentMethod(e.target.value)} disabled={topUp.isPending} />
            </label>
            <p>
              1NCE adds its standard top-up product to the {QUOTA_TITLE[kind]} quota
              {current ? ` (now ${formatQuota(kind, current.remaining)} left of ${formatQuota(kind, current.total)})` : ''}. It is billed
              to the account.
            </p>
          </>
        )}
        {topUp.isPending && <p className="progress" aria-live="polite">Sending the top-up and waiting for the read model…</p>}
        {step === 'waiting' && <p className="progress" aria-live="polite">Requested. Waiting for 1NCE to confirm the top-up…</p>}
        {step === 'done' && current && (
          <p role="status" data-testid="topup-result">
            {SETTLED[current.last_topup_status ?? ''] ?? 'Done'}: the {QUOTA_TITLE[kind]} quota is now{' '}
            <strong>{formatQuota(kind, current.remaining)}</strong> left of {formatQuota(kind, current.total)}.
          </p>
        )}
        {topUp.error && <ErrorNotice error={topUp.error} what="top up this SIM" />}
        <div className="actions">
          {step === 'choose' ? (
            <>
              <button type="button" onClick={onClose} disabled={topUp.isPending}>
                Cancel
              </button>
              <button type="submit" className="primary" disabled={topUp.isPending}>
                Top up {QUOTA_TITLE[kind]}
              </button>
            </>
          ) : (
            <button type="submit" className={step === 'done' ? 'primary' : undefined}>
              Close
            </button>
          )}
        </div>
      </form>
    </dialog>
  );
}
