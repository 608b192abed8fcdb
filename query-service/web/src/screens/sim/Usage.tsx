import { keepPreviousData, useQuery } from '@tanstack/react-query';
import { useState } from 'react';
import { query, unwrap } from '../../api/client';
import type { Granularity } from '../../api/types';
import { ErrorNotice } from '../../components/ErrorNotice';
import { UsageChart } from '../../components/UsageChart';
import { formatBytes, formatCount } from '../../lib/format';
import { DAY_MS, usageRange } from '../../lib/range';

const DEFAULT_DAYS: Record<Granularity, number> = { hour: 1, day: 30 };
const dateOnly = (ms: number) => new Date(ms).toISOString().slice(0, 10);

/** The SIM's usage per hour or day over a range of whole days (UTC). */
export function Usage({ iccid }: { iccid: string }) {
  const [granularity, setGranularity] = useState<Granularity>('hour');
  const [to, setTo] = useState(() => dateOnly(Date.now()));
  const [from, setFrom] = useState(() => dateOnly(Date.now() - (DEFAULT_DAYS.hour - 1) * DAY_MS));
  const range = usageRange(from, to, granularity);

  const usage = useQuery({
    queryKey: ['sim', iccid, 'usage', granularity, from, to],
    enabled: !range.error,
    placeholderData: keepPreviousData,
    queryFn: () =>
      unwrap(query.GET('/api/v1/sims/{iccid}/usage', { params: { path: { iccid }, query: { granularity, from: range.from, to: range.to } } })),
  });

  const choose = (g: Granularity) => {
    setGranularity(g);
    setFrom(dateOnly(Date.parse(`${to}T00:00:00Z`) - (DEFAULT_DAYS[g] - 1) * DAY_MS));
  };

  return (
    <section className="card sim-section" aria-labelledby="usage-title">
      <h2 id="usage-title">Usage</h2>
      <div className="range">
        <fieldset className="segmented">
          <legend className="sr-only">Buckets</legend>
          {(['hour', 'day'] as const).map((g) => (
            <label key={g}>
              <input type="radio" name="sim-granularity" value={g} checked={granularity === g} onChange={() => choose(g)} />
              Per {g}
            </label>
          ))}
        </fieldset>
        <label>
          From (UTC)
          <input type="date" value={from} max={to} onChange={(e) => setFrom(e.target.value)} aria-invalid={!!range.error} aria-describedby="usage-range-error" />
        </label>
        <label>
          To (UTC, inclusive)
          <input type="date" value={to} min={from} onChange={(e) => setTo(e.target.value)} aria-invalid={!!range.error} aria-describedby="usage-range-error" />
        </label>
      </div>
      <p id="usage-range-error" className="field-error" aria-live="polite">
        {range.error}
      </p>
      {usage.error && <ErrorNotice error={usage.error} what="load this SIM's usage" />}
      {usage.isFetching && <p className="progress small">Loading…</p>}
      {usage.data &&
        (usage.data.points.length ? (
          <>
            <UsageChart points={usage.data.points} range={[usage.data.from, usage.data.to]} label={`Usage of SIM ${iccid} per ${granularity}, ${from} to ${to}`} />
            <p className="muted small">
              {formatBytes(usage.data.points.reduce((sum, p) => sum + p.data_bytes, 0))} of data,{' '}
              {formatCount(usage.data.points.reduce((sum, p) => sum + p.sms_mo, 0))} SMS sent by the device and{' '}
              {formatCount(usage.data.points.reduce((sum, p) => sum + p.sms_mt, 0))} to it in this range.
            </p>
          </>
        ) : (
          <p className="muted">No usage reported in this range.</p>
        ))}
    </section>
  );
}
