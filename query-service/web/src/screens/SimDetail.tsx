import { useMutation, useQuery, useQueryClient } from '@tanstack/react-query';
import { Link } from 'wouter';
import { afterCommand, command, query, unwrap } from '../api/client';
import type { QuotaRow, SimView } from '../api/types';
import { roleAtLeast } from '../api/useSession';
import { ErrorNotice } from '../components/ErrorNotice';
import { formatAge, formatBytes, formatCount, formatDateTime, usedPercent } from '../lib/format';

/** One SIM: identity, connectivity, status and quotas. */
export function SimDetail({ iccid }: { iccid: string }) {
  const path = { params: { path: { iccid } } };
  const sim = useQuery({ queryKey: ['sim', iccid], queryFn: () => unwrap(query.GET('/api/v1/sims/{iccid}', path)) });
  const quotas = useQuery({ queryKey: ['sim', iccid, 'quotas'], queryFn: () => unwrap(query.GET('/api/v1/sims/{iccid}/quotas', path)) });

  return (
    <>
      <p>
        <Link href="/sims">← SIMs</Link>
      </p>
      <h1>
        SIM <span className="mono">{iccid}</span>
      </h1>
      {sim.error && <ErrorNotice error={sim.error} what="load this SIM" />}
      {sim.isPending && <p aria-live="polite">Loading…</p>}
      {sim.data && (
        <div className="cards">
          <Status sim={sim.data} />
          <section className="card" aria-labelledby="identity-title">
            <h2 id="identity-title">Identity</h2>
            <dl className="pairs">
              <Pair term="ICCID" value={sim.data.iccid} mono />
              <Pair term="IMSI" value={sim.data.imsi} mono />
              <Pair term="MSISDN" value={sim.data.msisdn} mono />
              <Pair term="IMEI" value={sim.data.imei ? `${sim.data.imei}${sim.data.imei_lock ? ' (locked)' : ''}` : null} mono />
              <Pair term="Label" value={sim.data.label} />
              <Pair term="Tags" value={sim.data.tags.join(', ') || null} />
              <Pair term="Registered" value={formatDateTime(sim.data.registered_at)} />
            </dl>
          </section>
          <section className="card" aria-labelledby="connectivity-title">
            <h2 id="connectivity-title">Connectivity</h2>
            <dl className="pairs">
              <Pair term="Network" value={sim.data.network} />
              <Pair term="Country" value={sim.data.country} />
              <Pair term="Radio access" value={sim.data.rat} />
              <Pair term="IP address" value={sim.data.ip_address} mono />
              <Pair term="Last seen" value={sim.data.last_seen_at ? `${formatAge(sim.data.last_seen_at)} (${formatDateTime(sim.data.last_seen_at)})` : null} />
            </dl>
          </section>
        </div>
      )}
      <section aria-labelledby="quotas-title">
        <h2 id="quotas-title">Quotas</h2>
        {quotas.error && <ErrorNotice error={quotas.error} what="load the quotas" />}
        {quotas.data?.length === 0 && <p className="muted">The provider has not reported quotas for this SIM yet.</p>}
        <div className="cards">
          {quotas.data?.map((quota) => <Quota key={quota.kind} quota={quota} />)}
        </div>
      </section>
    </>
  );
}

function Pair({ term, value, mono }: { term: string; value: string | null | undefined; mono?: boolean }) {
  return (
    <div>
      <dt>{term}</dt>
      <dd className={mono ? 'mono' : undefined}>{value ?? '—'}</dd>
    </div>
  );
}

function Status({ sim }: { sim: SimView }) {
  const queryClient = useQueryClient();
  const change = useMutation({
    mutationFn: (action: 'activate' | 'suspend') =>
      unwrap(command.POST(`/api/v1/sims/{iccid}/${action}`, { params: { path: { iccid: sim.iccid } } })),
    onSuccess: async (answer) => {
      // The next reads wait until the read models show the request.
      afterCommand(answer);
      await queryClient.invalidateQueries({ queryKey: ['sim', sim.iccid] });
    },
  });
  const canCommand = roleAtLeast('operator') && sim.status !== 'terminated' && !sim.pending_change;
  const action = sim.status === 'active' ? 'suspend' : 'activate';
  const confirmText =
    action === 'suspend'
      ? `Suspend SIM ${sim.iccid}? 1NCE disables it: it stops transferring data until activated again.`
      : `Activate SIM ${sim.iccid}? 1NCE enables it: it can transfer data and may be billed.`;

  return (
    <section className="card" aria-labelledby="status-title">
      <h2 id="status-title">Status</h2>
      <p className="big">
        <span className={`badge ${sim.status}`} data-testid="sim-status">
          {sim.status}
        </span>
      </p>
      <dl className="pairs">
        <Pair term="Pending at 1NCE" value={sim.pending_change} />
        <Pair term="As 1NCE reports it" value={sim.provider_status} />
        <Pair term="Updated" value={formatDateTime(sim.updated_at)} />
      </dl>
      {canCommand && (
        <button
          type="button"
          disabled={change.isPending}
          onClick={() => {
            if (window.confirm(confirmText)) change.mutate(action);
          }}
        >
          {action === 'suspend' ? 'Suspend' : 'Activate'}
        </button>
      )}
      {change.isPending && <p aria-live="polite">Sending…</p>}
      {change.error && <ErrorNotice error={change.error} what={`${action} this SIM`} />}
    </section>
  );
}

function Quota({ quota }: { quota: QuotaRow }) {
  const isData = quota.kind === 'data';
  const format = isData ? formatBytes : formatCount;
  const used = usedPercent(quota.total, quota.remaining);
  const title = isData ? 'Data' : 'SMS';
  return (
    <section className="card" aria-label={`${title} quota`}>
      <h3>{title}</h3>
      <p>
        <strong>{format(quota.remaining)}</strong> left of {format(quota.total)}
      </p>
      {used !== null && (
        <>
          <meter min={0} max={100} low={80} high={99.9} optimum={0} value={used} aria-label={`${title} used, percent`} />
          <p className="muted small">{Math.round(used)} % used</p>
        </>
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
