import { keepPreviousData, useMutation, useQuery, useQueryClient } from '@tanstack/react-query';
import { useState } from 'react';
import { Link } from 'wouter';
import { command, download, unwrap } from '../api/client';
import { useJobPage } from '../api/jobPage';
import { BulkJobItem, BulkJobStatus, useBulkJob } from '../components/BulkJobStatus';
import { ErrorNotice } from '../components/ErrorNotice';
import { ListTable } from '../components/ListTable';
import { CursorSteps, PageSteps } from '../components/Pager';
import { jobProgress, jobSettled } from '../lib/bulk';
import { formatCount, formatDateTime } from '../lib/format';

const PAGE = 20;

/** Recent bulk jobs (newest first) with their progress; a running one is read again every 2 s. */
export function BulkJobs() {
  const [page, setPage] = useState(1);
  const jobs = useJobPage(
    'bulk-jobs',
    page,
    () => command.GET('/api/v1/bulk-jobs', { params: { query: { page, page_size: PAGE } } }),
    (job) => !jobSettled(job),
  );
  return (
    <>
      <h1>Bulk jobs</h1>
      <p className="muted">
        Actions over many SIMs, submitted from the <Link href="/sims">SIM table</Link> or by a <Link href="/import">CSV import</Link>.
      </p>
      {jobs.error && <ErrorNotice error={jobs.error} what="load the bulk jobs" />}
      <ListTable caption="Bulk jobs, newest first" columns={['Submitted', 'Action', 'By', 'Status', 'Progress']} busy={jobs.isFetching}>
        {jobs.data?.list.map((job) => {
          const { percent, summary } = jobProgress(job);
          return (
            <tr key={job.id}>
              <td data-label="Submitted">
                <Link href={`/jobs/${job.id}`}>{formatDateTime(job.created_at)}</Link>
              </td>
              <td data-label="Action">
                {job.action.replace('_', ' ')}
                {job.dry_run && ' (dry run)'}
              </td>
              <td data-label="By">{job.created_by}</td>
              <td data-label="Status">
                <span className={`badge job ${job.status}`}>{job.status}</span>
              </td>
              <td data-label="Progress">
                <progress max={100} value={percent} aria-label={`Progress of the job of ${formatDateTime(job.created_at)}`} />{' '}
                <span className="small">{summary}</span>
              </td>
            </tr>
          );
        })}
      </ListTable>
      {jobs.data?.list.length === 0 && <p>No bulk job yet.</p>}
      <PageSteps page={page} total={jobs.data?.total} pageSize={PAGE} onPage={setPage} />
    </>
  );
}

const OUTCOMES = ['', 'pending', 'applied', 'refused', 'failed', 'cancelled', 'would_apply'] as const;
const ITEMS_PAGE = 100;

/** One bulk job: progress, what it was asked, its per-SIM outcomes (paged, or all as CSV), cancel. */
export function BulkJobDetail({ id }: { id: string }) {
  const job = useBulkJob(id);
  const queryClient = useQueryClient();
  const [outcome, setOutcome] = useState<(typeof OUTCOMES)[number]>('');
  const [cursors, setCursors] = useState<(number | undefined)[]>([undefined]);
  const after = cursors[cursors.length - 1];
  const settled = job.data ? jobSettled(job.data) : false;
  const items = useQuery({
    queryKey: ['bulk-job-items', id, outcome, after],
    queryFn: async () => {
      const result = await command.GET('/api/v1/bulk-jobs/{id}/items', {
        params: { path: { id }, query: { page_size: ITEMS_PAGE, ...(outcome ? { outcome } : {}), ...(after ? { after } : {}) } },
      });
      const list = (await unwrap(Promise.resolve(result))) as BulkJobItem[];
      const next = result.response.headers.get('X-Next-Cursor');
      return { list, total: Number(result.response.headers.get('X-Total-Count') ?? list.length), next: next ? Number(next) : null };
    },
    placeholderData: keepPreviousData,
    refetchInterval: settled ? false : 2000,
  });
  const cancel = useMutation({
    mutationFn: () => unwrap(command.POST('/api/v1/bulk-jobs/{id}/cancel', { params: { path: { id } } })),
    onSuccess: () => queryClient.invalidateQueries({ queryKey: ['bulk-job', id] }),
  });
  const [csvError, setCsvError] = useState<unknown>(null);

  return (
    <>
      <p>
        <Link href="/jobs">← Bulk jobs</Link>
      </p>
      <h1>Bulk job</h1>
      <p className="mono small">{id}</p>
      <BulkJobStatus id={id} />
      {job.data && (
        <dl className="pairs narrow">
          <div>
            <dt>Submitted</dt>
            <dd>
              {formatDateTime(job.data.created_at)} by {job.data.created_by}
            </dd>
          </div>
          <div>
            <dt>Target</dt>
            <dd className="mono small">{JSON.stringify(job.data.target).slice(0, 200)}</dd>
          </div>
          <div>
            <dt>Parameters</dt>
            <dd className="mono small">{JSON.stringify(job.data.params)}</dd>
          </div>
          {job.data.finished_at && (
            <div>
              <dt>Finished</dt>
              <dd>{formatDateTime(job.data.finished_at)}</dd>
            </div>
          )}
        </dl>
      )}
      <div className="row actions">
        {job.data && (job.data.status === 'queued' || job.data.status === 'running') && (
          <button type="button" onClick={() => cancel.mutate()} disabled={cancel.isPending}>
            Cancel what has not started
          </button>
        )}
        <button
          type="button"
          onClick={() => {
            setCsvError(null);
            download(`/api/v1/bulk-jobs/${id}/items?format=csv${outcome ? `&outcome=${outcome}` : ''}`, `bulk-job-${id}.csv`).catch(setCsvError);
          }}
        >
          Download outcomes (CSV)
        </button>
      </div>
      {cancel.error && <ErrorNotice error={cancel.error} what="cancel the job" />}
      {csvError !== null && <ErrorNotice error={csvError} what="download the outcomes" />}

      <h2>Outcomes per SIM</h2>
      <label className="inline">
        Outcome
        <select
          value={outcome}
          onChange={(e) => {
            setOutcome(e.target.value as (typeof OUTCOMES)[number]);
            setCursors([undefined]);
          }}
        >
          {OUTCOMES.map((o) => (
            <option key={o} value={o}>
              {o ? o.replace('_', ' ') : 'all'}
            </option>
          ))}
        </select>
      </label>
      {items.error && <ErrorNotice error={items.error} what="load the outcomes" />}
      <ListTable caption="Outcome of each SIM" columns={['#', 'ICCID', 'Outcome', 'Provider', 'Reason']} busy={items.isFetching}>
        {items.data?.list.map((item) => (
          <tr key={item.seq}>
            <td data-label="#">{item.seq}</td>
            <td data-label="ICCID">
              <Link href={`/sims/${item.iccid}`}>{item.iccid}</Link>
            </td>
            <td data-label="Outcome">{item.outcome ?? 'pending'}</td>
            <td data-label="Provider">{item.provider_outcome ?? '—'}</td>
            <td data-label="Reason">
              {item.code && <span className="mono small">{item.code} </span>}
              {item.message ?? item.provider_reason ?? ''}
            </td>
          </tr>
        ))}
      </ListTable>
      <nav className="pager" aria-label="Pages of outcomes">
        <span>{formatCount(items.data?.total)} in all</span>
        <CursorSteps cursors={cursors} onCursors={setCursors} next={items.data?.next} stale={items.isPlaceholderData} />
      </nav>
    </>
  );
}
