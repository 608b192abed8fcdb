import { useState } from 'react';
import type { QuotaRow } from '../../api/types';
import { roleAtLeast } from '../../api/useSession';
import { ErrorNotice } from '../../components/ErrorNotice';
import { formatBytes, formatCount, formatDateTime, usedPercent } from '../../lib/format';
import { Pair } from './common';
import { useQuotas } from './queries';
import { TopUpDialog } from './TopUpDialog';

export type QuotaKind = 'data' | 'sms';
export const QUOTA_TITLE: Record<QuotaKind, string> = { data: 'Data', sms: 'SMS' };
export const formatQuota = (kind: string, n: number | null | undefined) => (kind === 'data' ? formatBytes(n) : formatCount(n));

/** Data and SMS quotas as bars with their expiry, and the top-up (operators and admins). */
export function Quotas({ iccid, live }: { iccid: string; live: boolean }) {
  const quotas = useQuotas(iccid);
  const [topUp, setTopUp] = useState(false);
  return (
    <section className="sim-section" aria-labelledby="quotas-title">
      <div className="row">
        <h2 id="quotas-title">Quotas</h2>
        {live && roleAtLeast('operator') && (
          <button type="button" onClick={() => setTopUp(true)}>
            Top up…
          </button>
        )}
      </div>
      {quotas.error && <ErrorNotice error={quotas.error} what="load the quotas" />}
      {quotas.isPending && <p className="progress">Loading…</p>}
      {quotas.data?.length === 0 && <p className="muted">The provider has not reported quotas for this SIM yet.</p>}
      <div className="cards">
        {quotas.data?.map((quota) => <Quota key={quota.kind} quota={quota} />)}
      </div>
      {topUp && <TopUpDialog iccid={iccid} quotas={quotas.data ?? []} onClose={() => setTopUp(false)} />}
    </section>
  );
}

function Quota({ quota }: { quota: QuotaRow }) {
  const used = usedPercent(quota.total, quota.remaining);
  const title = QUOTA_TITLE[quota.kind as QuotaKind] ?? quota.kind;
  return (
    <section className="card" aria-label={`${title} quota`} data-testid={`quota-${quota.kind}`}>
      <h3>{title}</h3>
      <p>
        <strong data-testid={`quota-${quota.kind}-remaining`}>{formatQuota(quota.kind, quota.remaining)}</strong> left of{' '}
        <span data-testid={`quota-${quota.kind}-total`}>{formatQuota(quota.kind, quota.total)}</span>
      </p>
      {used !== null && (
        <>
          <meter min={0} max={100} low={80} high={99.9} optimum={0} value={used} aria-label={`${title} used, percent`} />
          <p className="muted small">{Math.round(used)} % used</p>
        </>
      )}
      {quota.pending_topup_id && (
        <p className="progress" aria-live="polite">
          Top-up of {formatQuota(quota.kind, quota.pending_topup_volume)} waiting for 1NCE…
        </p>
      )}
      <dl className="pairs">
        <Pair term="Expires" value={formatDateTime(quota.expiry_date)} />
        <Pair term="Alerts this period" value={quota.thresholds_crossed.length ? quota.thresholds_crossed.map((t) => `${t} %`).join(', ') : null} />
        <Pair term="State" value={quota.exhausted ? 'used up' : quota.expired ? 'expired' : 'available'} />
        <Pair term="Last top-up" value={quota.last_topup_at ? `${formatDateTime(quota.last_topup_at)} (${quota.last_topup_status ?? '?'})` : null} />
      </dl>
    </section>
  );
}
