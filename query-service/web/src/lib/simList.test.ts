import { describe, expect, it } from 'vitest';
import { DEFAULT_COLUMNS, DEFAULT_STATE, fromSearch, listParams, loadColumns, saveColumns, searchProblem, toSearch } from './simList';

describe('listParams', () => {
  it('sends only what is set, with the cursor', () => {
    expect(listParams(DEFAULT_STATE, '')).toEqual({ page_size: 50, after: '' });
    const state = { ...DEFAULT_STATE, text: ' 8988 ', statuses: ['active' as const, 'suspended' as const], tags: 'a, b,,', sort: 'last_seen_at' as const, descending: true };
    expect(listParams(state, 'abc')).toEqual({
      page_size: 50,
      after: 'abc',
      iccid: '8988',
      status: 'active,suspended',
      tag: 'a,b',
      sort: '-last_seen_at',
    });
  });

  it('sends the quota states as the API names them', () => {
    const state = { ...DEFAULT_STATE, quotaStates: ['warning' as const, 'exhausted' as const] };
    expect(listParams(state, '')).toEqual({ page_size: 50, after: '', quota_state: 'warning,exhausted' });
  });

  it('leaves out a search the API would refuse', () => {
    expect(listParams({ ...DEFAULT_STATE, field: 'imsi', text: '90140x' }, '')).toEqual({ page_size: 50, after: '' });
    expect(listParams({ ...DEFAULT_STATE, field: 'label', text: 'pump 4' }, '').label).toBe('pump 4');
  });
});

describe('searchProblem', () => {
  it('explains digits-only prefixes and their lengths', () => {
    expect(searchProblem({ field: 'iccid', text: '' })).toBeNull();
    expect(searchProblem({ field: 'iccid', text: '1'.repeat(20) })).toBeNull();
    expect(searchProblem({ field: 'iccid', text: '1'.repeat(21) })).toBe('Type 1 to 20 digits.');
    expect(searchProblem({ field: 'msisdn', text: '+49' })).toBe('Type 1 to 15 digits.');
    expect(searchProblem({ field: 'label', text: 'x'.repeat(101) })).toMatch(/100 characters/);
  });
});

describe('the address', () => {
  it('round-trips a state and drops defaults', () => {
    expect(toSearch(DEFAULT_STATE)).toBe('');
    const state = { ...DEFAULT_STATE, field: 'msisdn' as const, text: '4917', statuses: ['active' as const], quotaStates: ['exhausted' as const], tags: 'fleet', sort: 'status' as const, descending: true, pageSize: 100 };
    expect(fromSearch(toSearch(state))).toEqual(state);
  });

  it('ignores what it does not know', () => {
    expect(fromSearch('?field=owner&status=active,broken&quota=full,ok&sort=-price&size=7')).toEqual({
      ...DEFAULT_STATE,
      statuses: ['active'],
      quotaStates: ['ok'],
    });
  });
});

describe('columns', () => {
  const memory = () => {
    const items = new Map<string, string>();
    return { getItem: (k: string) => items.get(k) ?? null, setItem: (k: string, v: string) => void items.set(k, v) };
  };

  it('defaults, then keeps the choice in the table order with the ICCID always in', () => {
    const storage = memory();
    expect(loadColumns(storage)).toEqual(DEFAULT_COLUMNS);
    expect(saveColumns(storage, ['status', 'label'])).toEqual(['iccid', 'label', 'status']);
    expect(loadColumns(storage)).toEqual(['iccid', 'label', 'status']);
  });

  it('falls back to the defaults on a damaged entry', () => {
    const storage = memory();
    storage.setItem('simp.sim-table.columns', '{not json');
    expect(loadColumns(storage)).toEqual(DEFAULT_COLUMNS);
    storage.setItem('simp.sim-table.columns', '["label"]');
    expect(loadColumns(storage)).toEqual(DEFAULT_COLUMNS);
  });
});
