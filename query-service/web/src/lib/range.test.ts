import { describe, expect, it } from 'vitest';
import { usageRange } from './range';

describe('usageRange', () => {
  it('covers whole UTC days, the end day included', () => {
    expect(usageRange('2025-03-01', '2025-03-01', 'hour')).toEqual({ from: '2025-03-01T00:00:00.000Z', to: '2025-03-02T00:00:00.000Z', error: null });
    expect(usageRange('2025-02-27', '2025-03-01', 'day').to).toBe('2025-03-02T00:00:00.000Z');
  });

  it('keeps to the API limits: 31 days per hour, 366 per day', () => {
    expect(usageRange('2025-01-01', '2025-01-31', 'hour').error).toBeNull();
    expect(usageRange('2025-01-01', '2025-02-01', 'hour').error).toMatch(/at most 31 days.*32/);
    expect(usageRange('2024-01-01', '2024-12-31', 'day').error).toBeNull();
    expect(usageRange('2024-01-01', '2025-01-01', 'day').error).toMatch(/366/);
  });

  it('refuses a start after the end and missing dates', () => {
    expect(usageRange('2025-03-02', '2025-03-01', 'day').error).toMatch(/not be after/);
    expect(usageRange('', '2025-03-01', 'day').error).toMatch(/Choose/);
    expect(usageRange('2025-13-45', '2025-03-01', 'day').error).not.toBeNull();
  });
});
