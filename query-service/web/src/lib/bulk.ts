// Bulk actions over SIMs: what each one does (the confirmation says it in words, with the
// count), the parameters it sends to `POST /bulk-jobs`, and a job's progress in numbers.
import { formatCount } from './format';
import { splitTags } from './simList';

export const BULK_ACTIONS = {
  activate: { label: 'Activate', effect: 'asks the provider to activate it (data and SMS work again)' },
  suspend: { label: 'Suspend', effect: 'asks the provider to suspend it (no data, no SMS until it is activated again)' },
  top_up: { label: 'Top up', effect: "books the provider's standard top-up of its quota (this is charged)" },
  add_tags: { label: 'Tag', effect: 'adds the tags' },
  send_sms: { label: 'Send SMS', effect: 'sends it the SMS' },
} as const;
export type BulkActionName = keyof typeof BULK_ACTIONS;

/** What the form of the confirmation holds (only the fields of the chosen action count). */
export interface BulkForm {
  quota: 'data' | 'sms';
  tags: string;
  payload: string;
}
export const EMPTY_FORM: BulkForm = { quota: 'data', tags: '', payload: '' };

export type BulkParams = { quota?: 'data' | 'sms'; tags?: string[]; payload?: string };

/** The action's parameters, or why they cannot be sent yet. */
export function bulkParams(action: BulkActionName, form: BulkForm): { params: BulkParams } | { problem: string } {
  switch (action) {
    case 'top_up':
      return { params: { quota: form.quota } };
    case 'add_tags': {
      const tags = splitTags(form.tags);
      return tags.length ? { params: { tags } } : { problem: 'Name at least one tag.' };
    }
    case 'send_sms':
      return form.payload.trim() ? { params: { payload: form.payload } } : { problem: 'Write the message.' };
    default:
      return { params: {} };
  }
}

const sims = (n: number) => `${formatCount(n)} SIM${n === 1 ? '' : 's'}`;

/** The confirmation's sentence: how many SIMs and what will happen to each. */
export function describeBulk(action: BulkActionName, count: number, form: BulkForm, approximate = false): string {
  const what = BULK_ACTIONS[action];
  const many = `${approximate ? 'about ' : ''}${sims(count)}`;
  let detail = '';
  if (action === 'top_up') detail = ` (${form.quota === 'sms' ? 'SMS' : 'data'} quota)`;
  if (action === 'add_tags') detail = `: ${splitTags(form.tags).join(', ') || '(none yet)'}`;
  if (action === 'send_sms') detail = ` (${form.payload.length} characters)`;
  return `${what.label} ${many}: for each SIM the platform ${what.effect}${detail}. SIMs for which this is not allowed are reported as refused; the others go on.`;
}

/** The counters of a bulk job (`GET /bulk-jobs/{id}`) that progress is read from. */
export interface JobCounters {
  status: string;
  dry_run: boolean;
  total: number;
  done: number;
  applied: number;
  would_apply: number;
  refused: number;
  failed: number;
  cancelled: number;
  provider_pending: number;
  provider_completed: number;
  provider_failed: number;
  provider_unknown: number;
}

/** Whether nothing more will change on the job (its provider outcomes included). */
export function jobSettled(job: JobCounters): boolean {
  return (job.status === 'done' || job.status === 'cancelled') && job.provider_pending === 0;
}

/** The job's progress: the share run, and a sentence for screen readers and people. */
export function jobProgress(job: JobCounters): { percent: number; summary: string } {
  const finished = job.done + job.cancelled;
  const percent = job.total === 0 ? 100 : Math.min(100, Math.floor((finished * 100) / job.total));
  const parts = [`${formatCount(job.done)} of ${formatCount(job.total)} run`];
  if (job.dry_run) parts.push(`${formatCount(job.would_apply)} would apply`);
  else parts.push(`${formatCount(job.applied)} applied`);
  if (job.refused) parts.push(`${formatCount(job.refused)} refused`);
  if (job.failed) parts.push(`${formatCount(job.failed)} failed`);
  if (job.cancelled) parts.push(`${formatCount(job.cancelled)} cancelled`);
  const provider = job.provider_pending + job.provider_completed + job.provider_failed + job.provider_unknown;
  if (provider > 0) {
    const outcomes = [`${formatCount(job.provider_completed)} confirmed`];
    if (job.provider_pending) outcomes.push(`${formatCount(job.provider_pending)} waiting`);
    if (job.provider_failed) outcomes.push(`${formatCount(job.provider_failed)} failed`);
    if (job.provider_unknown) outcomes.push(`${formatCount(job.provider_unknown)} outcome unknown`);
    parts.push(`provider: ${outcomes.join(', ')}`);
  }
  return { percent, summary: parts.join('; ') };
}

const FILTER_KEYS = ['status', 'quota_state', 'tag', 'label', 'iccid', 'imsi', 'msisdn'] as const;

/**
 * The list's filter without paging and order: the target of a bulk job over "every SIM that
 * matches" and the parameters of the CSV export (`GET /sims/export`), the same words as
 * `GET /sims` takes.
 */
export function filterOf(params: Partial<Record<string, string | number>>): Record<string, string> {
  const filter: Record<string, string> = {};
  for (const key of FILTER_KEYS) {
    const value = params[key];
    if (value !== undefined && value !== '') filter[key] = String(value);
  }
  return filter;
}

/** The CSV export's address for a filter. */
export function exportPath(filter: Record<string, string>): string {
  const query = new URLSearchParams(filter).toString();
  return `/api/v1/sims/export${query ? `?${query}` : ''}`;
}
