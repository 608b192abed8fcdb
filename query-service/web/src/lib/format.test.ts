import { describe, expect, it } from 'vitest';
import { formatAge, formatBytes, formatCount, usedPercent } from './format';

describe('formatBytes', () => {
  it('uses decimal units with at most three significant digits', () => {
    expect(formatBytes(0)).toBe('0 B');
    expect(formatBytes(999)).toBe('999 B');
    expect(formatBytes(1000)).toBe('1 kB');
    expect(formatBytes(1500)).toBe('1.5 kB');
    expect(formatBytes(1_234_567)).toBe('1.23 MB');
    expect(formatBytes(12_345_678)).toBe('12.3 MB');
    expect(formatBytes(123_456_789)).toBe('123 MB');
    expect(formatBytes(5 * 10 ** 9)).toBe('5 GB');
  });

  it('carries a rounded 1000 into the next unit', () => {
    expect(formatBytes(999_999)).toBe('1 MB');
    expect(formatBytes(999_600)).toBe('1 MB');
  });

  it('stops at the largest unit and keeps the sign', () => {
    expect(formatBytes(2 * 10 ** 18)).toBe('2000 PB');
    expect(formatBytes(-1500)).toBe('-1.5 kB');
  });

  it('shows a dash for unknown values', () => {
    expect(formatBytes(null)).toBe('—');
    expect(formatBytes(undefined)).toBe('—');
    expect(formatBytes(Number.NaN)).toBe('—');
  });
});

describe('formatCount', () => {
  it('groups thousands', () => {
    expect(formatCount(100000)).toBe('100,000');
    expect(formatCount(null)).toBe('—');
  });
});

describe('usedPercent', () => {
  it('is the used share, clamped, or null when unknown', () => {
    expect(usedPercent(100, 20)).toBe(80);
    expect(usedPercent(100, 120)).toBe(0);
    expect(usedPercent(100, -5)).toBe(100);
    expect(usedPercent(0, 0)).toBeNull();
    expect(usedPercent(null, 5)).toBeNull();
  });
});

describe('formatAge', () => {
  it('says how long ago', () => {
    const now = Date.parse('2026-01-01T12:00:00Z');
    expect(formatAge('2026-01-01T11:59:30Z', now)).toBe('30 s ago');
    expect(formatAge('2026-01-01T11:00:00Z', now)).toBe('1 h ago');
    expect(formatAge('2025-12-30T12:00:00Z', now)).toBe('2 d ago');
    expect(formatAge(null, now)).toBe('—');
  });
});
