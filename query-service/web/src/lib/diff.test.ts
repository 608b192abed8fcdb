import { describe, expect, it } from 'vitest';
import { diffStates, sameValue, showValue } from './diff';

const registered = {
  iccid: '8988228066600000001',
  status: 'inactive',
  label: null,
  tags: ['fleet'],
  data_total: null,
  version: 1,
  last_position: 10,
  updated_at: '2025-01-01T00:00:00Z',
};

describe('diffStates', () => {
  it('lists the changed fields only, the book-keeping ones last', () => {
    const later = { ...registered, status: 'active', label: 'truck 7', version: 3, last_position: 42, updated_at: '2025-01-02T00:00:00Z' };
    expect(diffStates(registered, later)).toEqual([
      { field: 'label', before: null, after: 'truck 7' },
      { field: 'status', before: 'inactive', after: 'active' },
      { field: 'last_position', before: 10, after: 42 },
      { field: 'updated_at', before: '2025-01-01T00:00:00Z', after: '2025-01-02T00:00:00Z' },
      { field: 'version', before: 1, after: 3 },
    ]);
  });

  it('compares arrays by value and in order', () => {
    expect(diffStates(registered, { ...registered, tags: ['fleet'] })).toEqual([]);
    expect(diffStates(registered, { ...registered, tags: ['fleet', 'eu'] })).toEqual([{ field: 'tags', before: ['fleet'], after: ['fleet', 'eu'] }]);
    expect(diffStates({ tags: ['a', 'b'] }, { tags: ['b', 'a'] })).toHaveLength(1);
  });

  it('treats an absent field as null', () => {
    expect(diffStates({ a: null }, {})).toEqual([]);
    expect(diffStates({}, { a: 0 })).toEqual([{ field: 'a', before: null, after: 0 }]);
  });

  it('shows everything as added when the SIM did not exist before', () => {
    const changes = diffStates(null, { iccid: '1', status: 'inactive', label: null });
    expect(changes.map((c) => c.field)).toEqual(['iccid', 'status']);
    expect(changes.every((c) => c.before === null)).toBe(true);
  });

  it('is empty for the same state', () => {
    expect(diffStates(registered, { ...registered })).toEqual([]);
  });
});

describe('sameValue', () => {
  it('compares nested objects by value', () => {
    expect(sameValue({ a: [1, { b: 2 }] }, { a: [1, { b: 2 }] })).toBe(true);
    expect(sameValue({ a: [1, { b: 2 }] }, { a: [1, { b: 3 }] })).toBe(false);
    expect(sameValue([1], { 0: 1 })).toBe(false);
    expect(sameValue(0, null)).toBe(false);
    expect(sameValue('', null)).toBe(false);
  });
});

describe('showValue', () => {
  it('shows null, lists and objects readably', () => {
    expect(showValue(null)).toBe('—');
    expect(showValue([])).toBe('(none)');
    expect(showValue(['a', 'b'])).toBe('a, b');
    expect(showValue(false)).toBe('false');
    expect(showValue({ x: 1 })).toBe('{"x":1}');
  });
});
