import { useMutation, useQueryClient } from '@tanstack/react-query';
import { FormEvent, useState } from 'react';
import { Link } from 'wouter';
import { command, unwrap } from '../api/client';
import { useJobPage } from '../api/jobPage';
import { roleAtLeast } from '../api/useSession';
import { ErrorNotice } from '../components/ErrorNotice';
import { ListTable } from '../components/ListTable';
import { PageSteps } from '../components/Pager';
import { formatCount, formatDateTime } from '../lib/format';
import { describeIccidProblem, parseIccid } from '../lib/iccid';

const PAGE = 20;
const RUNNING = new Set(['queued', 'running']);

/**
 * Sync jobs: the provider's data fetched again now for one SIM or the whole fleet (the
 * connector also syncs on its own schedule). The list shows each job's progress, read again
 * every 2 s while one of them is still going.
 */
export function Sync() {
  const [page, setPage] = useState(1);
  const queryClient = useQueryClient();
  const operator = roleAtLeast('operator');
  const jobs = useJobPage(
    'sync-jobs',
    page,
    () => command.GET('/api/v1/sync-jobs', { params: { query: { page, page_size: PAGE } } }),
    (job) => RUNNING.has(job.status),
  );
  const queued = () => {
    setPage(1);
    queryClient.invalidateQueries({ queryKey: ['sync-jobs'] });
  };
  const syncAll = useMutation({
    mutationFn: () => unwrap(command.POST('/api/v1/sims/sync-all')),
    onSuccess: queued,
  });
  return (
    <>
      <h1>Sync</h1>
      <p className="muted">The connector keeps the platform in step with the provider on its own; a sync job asks for it now.</p>
      {operator && (
        <div className="cards">
          <section className="card" aria-labelledby="sync-all-title">
            <h2 id="sync-all-title">The whole fleet</h2>
            <p className="small">The provider's SIM list, then every SIM's details, within the API call budget.</p>
            <button type="button" className="primary" onClick={() => syncAll.mutate()} disabled={syncAll.isPending}>
              {syncAll.isPending ? 'Queueing…' : 'Sync all SIMs now'}
            </button>
            {syncAll.error && <ErrorNotice error={syncAll.error} what="queue the sync" />}
          </section>
          <SyncOne onQueued={queued} />
        </div>
      )}
      <h2>Jobs</h2>
      {jobs.error && <ErrorNotice error={jobs.error} what="load the sync jobs" />}
      <ListTable caption="Sync jobs, newest first" columns={['Requested', 'Scope', 'By', 'Status', 'Progress']} busy={jobs.isFetching}>
        {jobs.data?.list.map((job) => {
          const percent = job.sims_total > 0 ? Math.floor((job.sims_done * 100) / job.sims_total) : job.status === 'completed' ? 100 : 0;
          const failed = job.runs.filter((run) => run.error);
          return (
            <tr key={job.job_id} data-testid="sync-job">
              <td data-label="Requested">{formatDateTime(job.requested_at)}</td>
              <td data-label="Scope">{job.scope === 'all' ? 'all SIMs' : <Link href={`/sims/${job.scope}`}>{job.scope}</Link>}</td>
              <td data-label="By">{job.requested_by}</td>
              <td data-label="Status">
                <span className={`badge job ${job.status}`}>{job.status}</span>
              </td>
              <td data-label="Progress">
                <progress max={100} value={percent} aria-label={`Progress of the sync of ${job.scope} requested ${formatDateTime(job.requested_at)}`} />{' '}
                <span className="small">
                  {formatCount(job.sims_done)} of {formatCount(job.sims_total)} SIMs, {formatCount(job.events_recorded)} changes recorded
                  {job.runs.length > 1 && `, ${job.runs.length} shards`}
                </span>
                {failed.map((run) => (
                  <div key={run.shard} className="field-error">
                    Shard {run.shard}: {run.error}
                  </div>
                ))}
              </td>
            </tr>
          );
        })}
      </ListTable>
      {jobs.data?.list.length === 0 && <p>No sync job has been requested yet.</p>}
      <PageSteps page={page} total={jobs.data?.total} pageSize={PAGE} onPage={setPage} />
    </>
  );
}

function SyncOne({ onQueued }: { onQueued: () => void }) {
  const [text, setText] = useState('');
  const [touched, setTouched] = useState(false);
  const parsed = parseIccid(text);
  const sync = useMutation({
    mutationFn: (iccid: string) => unwrap(command.POST('/api/v1/sims/{iccid}/sync', { params: { path: { iccid } } })),
    onSuccess: () => {
      setText('');
      setTouched(false);
      onQueued();
    },
  });
  const submit = (event: FormEvent) => {
    event.preventDefault();
    setTouched(true);
    if (parsed.ok) sync.mutate(parsed.iccid);
  };
  const problem = touched && !parsed.ok ? describeIccidProblem(parsed.problem) : null;
  return (
    <section className="card" aria-labelledby="sync-one-title">
      <h2 id="sync-one-title">One SIM</h2>
      <form onSubmit={submit} className="stack" noValidate>
        <label>
          ICCID
          <input
            name="iccid"
            inputMode="numeric"
            value={text}
            aria-invalid={problem ? true : undefined}
            aria-describedby={problem ? 'sync-iccid-problem' : undefined}
            onChange={(e) => setText(e.target.value)}
          />
          {problem && (
            <span id="sync-iccid-problem" className="field-error">
              {problem}
            </span>
          )}
        </label>
        <button type="submit" disabled={sync.isPending}>
          {sync.isPending ? 'Queueing…' : 'Sync this SIM now'}
        </button>
      </form>
      {sync.error && <ErrorNotice error={sync.error} what="queue the sync" />}
    </section>
  );
}
