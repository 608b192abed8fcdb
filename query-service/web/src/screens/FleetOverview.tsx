import { keepPreviousData, useQuery } from '@tanstack/react-query';
import { useState } from 'react';
import { query, unwrap } from '../api/client';
import type { Granularity, QuotaTotals } from '../api/types';
import { ErrorNotice } from '../components/ErrorNotice';
import { UsageChart } from '../components/UsageChart';
import { formatBytes, formatCount } from '../lib/format';
import { STATUSES } from '../lib/simList';

const RANGES: Record<Granularity, { label: string; hours: number }> = {
  hour: { label: 'Last 24 hours, hourly', hours: 24 },
  day: { label: 'Last 30 days, daily', hours: 24 * 30 },
};

export function FleetOverview() {
  const summary = useQuery({
    queryKey: ['fleet', 'summary'],
    queryFn: () => unwrap(query.GET('/api/v1/fleet/summary')),
    refetchInterval: 30_000,
  });
  const [granularity, setGranularity] = useState<Granularity>('hour');
  const usage = useQuery({
    queryKey: ['fleet', 'usage', granularity],
    queryFn: () => {
      const to = new Date();
      const from = new Date(to.getTime() - RANGES[granularity].hours * 3600_000);
      return unwrap(
        query.GET('/api/v1/fleet/usage', {
          params: { query: { granularity, from: from.toISOString(), to: to.toISOString() } },
        }),
      );
    },
    placeholderData: keepPreviousData,
    refetchInterval: 60_000,
  });

  const s = summary.data;
  const byStatus = (s?.sims_by_status ?? {}) as Record<string, number>;
  const messages = (s?.sms_messages_by_status ?? {}) as Record<string, number>;
  return (
    <>
      <h1>Fleet</h1>
      {summary.error && <ErrorNotice error={summary.error} what="load the fleet summary" />}
      {summary.isPending && <p aria-live="polite">Loading the fleet…</p>}
      {s && (
        <div className="cards">
          <section className="card" aria-labelledby="sims-title">
            <h2 id="sims-title">SIMs</h2>
            <p className="big" data-testid="sims-total">
              {formatCount(s.sims_total)}
            </p>
            <dl className="pairs">
              {STATUSES.map((status) => (
                <div key={status}>
                  <dt>
                    <span className={`badge ${status}`}>{status}</span>
                  </dt>
                  <dd>{formatCount(byStatus[status] ?? 0)}</dd>
                </div>
              ))}
            </dl>
          </section>
          <QuotaCard title="Data" totals={s.data} format={formatBytes} />
          <QuotaCard title="SMS" totals={s.sms} format={formatCount} />
          <section className="card" aria-labelledby="pending-title">
            <h2 id="pending-title">Requests</h2>
            <dl className="pairs">
              <div>
                <dt>Activations and suspensions waiting for 1NCE</dt>
                <dd>{formatCount(s.changes_pending)}</dd>
              </div>
              <div>
                <dt>Top-ups waiting</dt>
                <dd>{formatCount(s.data.topups_pending + s.sms.topups_pending)}</dd>
              </div>
              {Object.entries(messages).map(([status, count]) => (
                <div key={status}>
                  <dt>SMS {status.replace(/_/g, ' ')}</dt>
                  <dd>{formatCount(count)}</dd>
                </div>
              ))}
            </dl>
            <p className="muted small">Read models at position {s.as_of_position}.</p>
          </section>
        </div>
      )}

      <section className="card wide" aria-labelledby="usage-title">
        <div className="row">
          <h2 id="usage-title">Usage</h2>
          <fieldset className="segmented">
            <legend className="sr-only">Period</legend>
            {(Object.keys(RANGES) as Granularity[]).map((g) => (
              <label key={g}>
                <input type="radio" name="granularity" value={g} checked={granularity === g} onChange={() => setGranularity(g)} />
                {RANGES[g].label}
              </label>
            ))}
          </fieldset>
        </div>
        {usage.error && <ErrorNotice error={usage.error} what="load the fleet's usage" />}
        {usage.data &&
          (usage.data.points.length ? (
            <>
              <UsageChart points={usage.data.points} range={[usage.data.from, usage.data.to]} label={`Fleet usage, ${RANGES[granularity].label.toLowerCase()}`} />
              <p className="muted small">
                {formatBytes(usage.data.points.reduce((sum, p) => sum + p.data_bytes, 0))} of data and{' '}
                {formatCount(usage.data.points.reduce((sum, p) => sum + p.sms_mo + p.sms_mt, 0))} SMS in this period.
              </p>
            </>
          ) : (
            <p className="muted">No usage reported in this period yet.</p>
          ))}
      </section>
    </>
  );
}

function QuotaCard({ title, totals, format }: { title: string; totals: QuotaTotals; format: (n: number) => string }) {
  const used = totals.total - totals.remaining;
  const id = `quota-${title.toLowerCase()}`;
  return (
    <section className="card" aria-labelledby={id}>
      <h2 id={id}>{title}</h2>
      <p className="big">{format(used)}</p>
      <p className="muted">used of {format(totals.total)} in the current quotas</p>
      {totals.total > 0 && <meter min={0} max={totals.total} value={used} aria-label={`${title} used`} />}
      <dl className="pairs">
        <div>
          <dt>Quotas used up (100 %)</dt>
          <dd>{formatCount(totals.exhausted)}</dd>
        </div>
        <div>
          <dt>Quotas expired</dt>
          <dd>{formatCount(totals.expired)}</dd>
        </div>
      </dl>
    </section>
  );
}
