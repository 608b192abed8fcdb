import { keepPreviousData, useQuery } from '@tanstack/react-query';
import { useEffect, useState } from 'react';
import { query, unwrap } from '../api/client';
import type { FleetSummary, FleetSummaryAsOf, Granularity, QuotaTotals } from '../api/types';
import { ErrorNotice } from '../components/ErrorNotice';
import { TimeSlider } from '../components/TimeSlider';
import { UsageChart } from '../components/UsageChart';
import { formatAge, formatBytes, formatCount, formatDateTime } from '../lib/format';
import { STATUSES } from '../lib/simList';
import { type Figures, liveFigures, pastFigures } from '../lib/timeline';

const RANGES: Record<Granularity, { label: string; hours: number }> = {
  hour: { label: 'Last 24 hours, hourly', hours: 24 },
  day: { label: 'Last 30 days, daily', hours: 24 * 30 },
};

export function FleetOverview() {
  // null: the live summary; otherwise the instant (epoch ms) the time slider shows.
  const [asOf, setAsOf] = useState<number | null>(null);
  const live = useQuery({
    queryKey: ['fleet', 'summary'],
    queryFn: () => unwrap(query.GET('/api/v1/fleet/summary')).then((s) => liveFigures(s as FleetSummary)),
    refetchInterval: 30_000,
    enabled: asOf === null,
  });
  const past = useQuery({
    queryKey: ['fleet', 'summary', 'as-of', asOf],
    queryFn: () =>
      unwrap(
        query.GET('/api/v1/fleet/summary', {
          // Never in the future (refused): "now" moves on while the page is open.
          params: { query: { as_of: new Date(Math.min(asOf ?? 0, Date.now())).toISOString() } },
        }),
      ).then((s) => pastFigures(s as FleetSummaryAsOf)),
    enabled: asOf !== null,
    placeholderData: keepPreviousData,
    // The record of a past instant does not change.
    staleTime: Infinity,
  });
  const summary = asOf === null ? live : past;
  const firstEvent = useQuery({
    queryKey: ['events', 'first'],
    queryFn: () => unwrap(query.GET('/api/v1/events', { params: { query: { limit: 1 } } })),
    staleTime: Infinity,
  });
  const now = useNow(60_000);
  const start = firstEvent.data?.events[0]?.recorded_at;
  // The first event's millisecond rounded up (its time has microseconds), so the slider's
  // start shows it.
  const span = start ? { start: Math.min(Date.parse(start) + 1, now), end: now } : null;

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
  return (
    <>
      <h1>Fleet</h1>
      {span && <TimeSlider span={span} value={asOf} onChange={setAsOf} />}
      {firstEvent.error && <ErrorNotice error={firstEvent.error} what="load the fleet's first event" />}
      {summary.error && <ErrorNotice error={summary.error} what="load the fleet summary" />}
      {summary.isPending && <p aria-live="polite">Loading the fleet…</p>}
      {s && <SummaryCards s={s} stale={summary.isPlaceholderData} />}

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

/** The summary's cards, for now or for the slider's instant (null figures explained). */
function SummaryCards({ s, stale }: { s: Figures; stale: boolean }) {
  const byStatus = s.simsByStatus ?? {};
  const unknown = Object.entries(s.unknown);
  return (
    <>
      {unknown.length > 0 && (
        <div className="notice past" role="status">
          <strong>Not in the record for this instant:</strong>
          <ul>
            {unknown.map(([figure, reason]) => (
              <li key={figure}>
                {figure.replace(/_/g, ' ')}: {reason}
              </li>
            ))}
          </ul>
        </div>
      )}
      <div className="cards" aria-busy={stale} data-testid="summary-cards">
        <section className="card" aria-labelledby="sims-title">
          <h2 id="sims-title">SIMs</h2>
          <p className="big" data-testid="sims-total">
            {formatCount(s.simsTotal)}
          </p>
          <dl className="pairs">
            {STATUSES.map((status) => (
              <div key={status}>
                <dt>
                  <span className={`badge ${status}`}>{status}</span>
                </dt>
                <dd>{s.simsByStatus ? formatCount(byStatus[status] ?? 0) : '—'}</dd>
              </div>
            ))}
          </dl>
        </section>
        <QuotaCard title="Data" totals={s.data} format={formatBytes} />
        <QuotaCard title="SMS" totals={s.sms} format={formatCount} />
        <section className="card" aria-labelledby="pending-title">
          <h2 id="pending-title">Pending requests and failures</h2>
          <dl className="pairs">
            <div>
              <dt>Activations and suspensions waiting for 1NCE</dt>
              <dd>{formatCount(s.changesPending)}</dd>
            </div>
            <div>
              <dt>Top-ups waiting</dt>
              <dd>{s.data && s.sms ? formatCount(s.data.topups_pending + s.sms.topups_pending) : '—'}</dd>
            </div>
            {s.asOf === null && (
              <>
                <div>
                  <dt>Top-ups failed</dt>
                  <dd data-testid="topups-failed">{formatCount(s.topupsFailed)}</dd>
                </div>
                <div>
                  <dt>Top-ups with unknown outcome</dt>
                  <dd>{formatCount(s.topupsOutcomeUnknown)}</dd>
                </div>
              </>
            )}
            {Object.entries(s.smsByStatus ?? {}).map(([status, count]) => (
              <div key={status}>
                <dt>SMS {status.replace(/_/g, ' ')}</dt>
                <dd>{formatCount(count)}</dd>
              </div>
            ))}
          </dl>
          <p className="muted small">
            {s.asOf === null ? 'Read models at position' : `As of ${formatDateTime(s.asOf)}: last change at position`} {s.position}.
          </p>
        </section>
        <section className="card" aria-labelledby="sync-title">
          <h2 id="sync-title">Sync freshness</h2>
          {s.asOf === null ? (
            <>
              <p className="big" data-testid="sync-age">
                {s.oldestUsageReportAt ? formatAge(s.oldestUsageReportAt) : '—'}
              </p>
              <p className="muted">
                {s.oldestUsageReportAt
                  ? `oldest usage report among the SIMs in service (${formatDateTime(s.oldestUsageReportAt)})`
                  : 'no usage reported yet'}
              </p>
              <dl className="pairs">
                <div>
                  <dt>SIMs without a usage report</dt>
                  <dd>{formatCount(s.simsWithoutUsageReport)}</dd>
                </div>
              </dl>
            </>
          ) : (
            <p className="muted">Shown for now only: move the slider to the end or press “Now”.</p>
          )}
        </section>
      </div>
    </>
  );
}

function QuotaCard({ title, totals, format }: { title: string; totals: QuotaTotals | null; format: (n: number) => string }) {
  const id = `quota-${title.toLowerCase()}`;
  if (!totals) {
    return (
      <section className="card" aria-labelledby={id}>
        <h2 id={id}>{title}</h2>
        <p className="big">—</p>
        <p className="muted">not known for this instant</p>
      </section>
    );
  }
  const used = totals.total - totals.remaining;
  return (
    <section className="card" aria-labelledby={id}>
      <h2 id={id}>{title}</h2>
      <p className="big">{format(used)}</p>
      <p className="muted">used of {format(totals.total)} in the current quotas</p>
      {totals.total > 0 && <meter min={0} max={totals.total} value={used} low={totals.total * 0.8} high={totals.total * 0.99} aria-label={`${title} used`} />}
      <dl className="pairs">
        <div>
          <dt>Quotas at 80 % or more (warning)</dt>
          <dd data-testid={`${id}-warning`}>{formatCount(totals.warning)}</dd>
        </div>
        <div>
          <dt>Quotas used up (100 %)</dt>
          <dd data-testid={`${id}-exhausted`}>{formatCount(totals.exhausted)}</dd>
        </div>
        <div>
          <dt>Quotas expired</dt>
          <dd>{formatCount(totals.expired)}</dd>
        </div>
      </dl>
    </section>
  );
}

/** The current time, moved on every `ms` (the slider's end is "now"). */
function useNow(ms: number): number {
  const [now, setNow] = useState(() => Date.now());
  useEffect(() => {
    const timer = setInterval(() => setNow(Date.now()), ms);
    return () => clearInterval(timer);
  }, [ms]);
  return now;
}
