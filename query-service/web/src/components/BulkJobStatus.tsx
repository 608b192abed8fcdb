import { useQuery, useQueryClient } from '@tanstack/react-query';
import { useEffect, useRef } from 'react';
import { Link } from 'wouter';
import { afterCommand, command, unwrap } from '../api/client';
import type { components } from '../api/command';
import { jobProgress, jobSettled } from '../lib/bulk';
import { ErrorNotice } from './ErrorNotice';

/** One SIM's outcome in a bulk job (the JSON form of `GET /bulk-jobs/{id}/items`). */
export type BulkJobItem = components['schemas']['ItemView'];

/** A bulk job's id, read with a fresh answer every second until nothing more will change. */
export function useBulkJob(id: string) {
  return useQuery({
    queryKey: ['bulk-job', id],
    queryFn: () => unwrap(command.GET('/api/v1/bulk-jobs/{id}', { params: { path: { id } } })),
    refetchInterval: (q) => (q.state.data && jobSettled(q.state.data) ? false : 1000),
    staleTime: 0,
  });
}

/**
 * Once a job has settled, the reads that follow wait for its commands (the highest position
 * among its first 1,000 applied items) and the lists showing SIMs are read again.
 */
async function followUp(id: string) {
  const items = (await unwrap(
    command.GET('/api/v1/bulk-jobs/{id}/items', { params: { path: { id }, query: { outcome: 'applied', page_size: 1000 } } }),
  )) as BulkJobItem[];
  const position = Math.max(0, ...items.map((item) => item.position ?? 0));
  if (position > 0) afterCommand({ position });
}

/** A bulk job's progress as a bar and a sentence (announced as it changes). */
export function BulkJobStatus({ id, compact = false }: { id: string; compact?: boolean }) {
  const job = useBulkJob(id);
  const queryClient = useQueryClient();
  const followed = useRef(false);
  const settled = job.data ? jobSettled(job.data) : false;

  useEffect(() => {
    if (!settled || followed.current) return;
    followed.current = true;
    followUp(id)
      .catch(() => undefined)
      .finally(() => {
        queryClient.invalidateQueries({ queryKey: ['sims'] });
        queryClient.invalidateQueries({ queryKey: ['bulk-jobs'] });
      });
  }, [settled, id, queryClient]);

  if (job.error) return <ErrorNotice error={job.error} what="read the job's progress" />;
  if (!job.data) return <p aria-live="polite">Reading the job…</p>;
  const { percent, summary } = jobProgress(job.data);
  const label = `Job ${job.data.action.replace('_', ' ')}${job.data.dry_run ? ' (dry run)' : ''}`;
  return (
    <div className="job-status" data-testid="bulk-job-status" data-status={job.data.status} data-settled={settled}>
      <div className="row">
        <strong>
          {label}: <span className={`badge job ${job.data.status}`}>{job.data.status}</span>
        </strong>
        {compact && <Link href={`/jobs/${id}`}>Job details</Link>}
      </div>
      <progress max={100} value={percent} aria-label={`${label}: progress`}>
        {percent} %
      </progress>
      <p aria-live="polite" className="small" data-testid="bulk-job-summary">
        {summary}
        {settled ? '. Finished.' : '…'}
      </p>
    </div>
  );
}
