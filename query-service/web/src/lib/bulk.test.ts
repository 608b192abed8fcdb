import { describe, expect, it } from 'vitest';
import { bulkParams, describeBulk, EMPTY_FORM, exportPath, filterOf, JobCounters, jobProgress, jobSettled } from './bulk';

const job = (change: Partial<JobCounters>): JobCounters => ({
  status: 'running',
  dry_run: false,
  total: 0,
  done: 0,
  applied: 0,
  would_apply: 0,
  refused: 0,
  failed: 0,
  cancelled: 0,
  provider_pending: 0,
  provider_completed: 0,
  provider_failed: 0,
  provider_unknown: 0,
  ...change,
});

describe('bulkParams', () => {
  it('sends what each action takes', () => {
    expect(bulkParams('suspend', EMPTY_FORM)).toEqual({ params: {} });
    expect(bulkParams('top_up', { ...EMPTY_FORM, quota: 'sms' })).toEqual({ params: { quota: 'sms' } });
    expect(bulkParams('add_tags', { ...EMPTY_FORM, tags: ' fleet-a, ,berlin ' })).toEqual({ params: { tags: ['fleet-a', 'berlin'] } });
    expect(bulkParams('send_sms', { ...EMPTY_FORM, payload: 'Reboot' })).toEqual({ params: { payload: 'Reboot' } });
  });

  it('asks for what is missing', () => {
    expect(bulkParams('add_tags', { ...EMPTY_FORM, tags: ' , ' })).toEqual({ problem: 'Name at least one tag.' });
    expect(bulkParams('send_sms', { ...EMPTY_FORM, payload: '  ' })).toEqual({ problem: 'Write the message.' });
  });
});

describe('describeBulk', () => {
  it('states how many SIMs and what happens to each', () => {
    expect(describeBulk('suspend', 1, EMPTY_FORM)).toMatch(/^Suspend 1 SIM: for each SIM the platform asks the provider to suspend it/);
    expect(describeBulk('top_up', 1200, { ...EMPTY_FORM, quota: 'sms' })).toMatch(/^Top up 1,200 SIMs: .*\(SMS quota\)\./);
    expect(describeBulk('add_tags', 3, { ...EMPTY_FORM, tags: 'a,b' }, true)).toMatch(/^Tag about 3 SIMs: .*adds the tags: a, b\./);
  });
});

describe('jobProgress', () => {
  it('counts run and cancelled items as progress', () => {
    expect(jobProgress(job({ total: 4, done: 1, applied: 1, cancelled: 1 })).percent).toBe(50);
    expect(jobProgress(job({ total: 0 })).percent).toBe(100);
    expect(jobProgress(job({ total: 3, done: 1 })).percent).toBe(33);
  });

  it('says the outcomes, the provider outcomes and dry runs', () => {
    expect(jobProgress(job({ total: 3, done: 3, applied: 2, refused: 1, provider_completed: 1, provider_pending: 1 })).summary).toBe(
      '3 of 3 run; 2 applied; 1 refused; provider: 1 confirmed, 1 waiting',
    );
    expect(jobProgress(job({ total: 2, done: 2, dry_run: true, would_apply: 2 })).summary).toBe('2 of 2 run; 2 would apply');
  });

  it('is settled once done with no provider outcome pending', () => {
    expect(jobSettled(job({ status: 'done', provider_pending: 1 }))).toBe(false);
    expect(jobSettled(job({ status: 'done' }))).toBe(true);
    expect(jobSettled(job({ status: 'cancelled' }))).toBe(true);
    expect(jobSettled(job({ status: 'running' }))).toBe(false);
  });
});

describe('filterOf and exportPath', () => {
  it('keep the filter and drop paging and order', () => {
    const filter = filterOf({ page_size: 50, after: 'x', sort: '-label', status: 'active,suspended', tag: 'a', iccid: '' });
    expect(filter).toEqual({ status: 'active,suspended', tag: 'a' });
    expect(exportPath(filter)).toBe('/api/v1/sims/export?status=active%2Csuspended&tag=a');
    expect(exportPath({})).toBe('/api/v1/sims/export');
  });
  it('keep the quota state (the table filters by it)', () => {
    expect(filterOf({ quota_state: 'warning,exhausted', page_size: 25 })).toEqual({ quota_state: 'warning,exhausted' });
  });
});
