// Numbers and times as the dashboard shows them.

const UNITS = ['B', 'kB', 'MB', 'GB', 'TB', 'PB'];

/** Bytes in decimal units (1 kB = 1000 B, as 1NCE counts volume): "1.5 MB", "999 B". */
export function formatBytes(bytes: number | null | undefined): string {
  if (bytes === null || bytes === undefined || !Number.isFinite(bytes)) return '—';
  const sign = bytes < 0 ? '-' : '';
  let value = Math.abs(bytes);
  let unit = 0;
  while (value >= 1000 && unit < UNITS.length - 1) {
    value /= 1000;
    unit++;
  }
  // Rounding can carry into the next unit (999.96 kB shows as "1 MB", not "1000 kB").
  if (unit < UNITS.length - 1 && Number(value.toFixed(value < 10 ? 2 : value < 100 ? 1 : 0)) >= 1000) {
    value /= 1000;
    unit++;
  }
  const digits = unit === 0 ? 0 : value < 10 ? 2 : value < 100 ? 1 : 0;
  const text = value.toFixed(digits).replace(/\.0+$|(\.\d*?)0+$/, '$1');
  return `${sign}${text} ${UNITS[unit]}`;
}

const counts = new Intl.NumberFormat('en');

export function formatCount(n: number | null | undefined): string {
  return n === null || n === undefined ? '—' : counts.format(n);
}

/** Used share of a quota in percent (0 to 100), or null when the total is unknown or zero. */
export function usedPercent(total: number | null | undefined, remaining: number | null | undefined): number | null {
  if (!total || remaining === null || remaining === undefined) return null;
  return Math.min(100, Math.max(0, ((total - remaining) / total) * 100));
}

/** "3 min ago", "2 h ago", "5 d ago" from an RFC 3339 time. */
export function formatAge(iso: string | null | undefined, now: number = Date.now()): string {
  if (!iso) return '—';
  const seconds = Math.max(0, Math.round((now - Date.parse(iso)) / 1000));
  if (seconds < 60) return `${seconds} s ago`;
  if (seconds < 3600) return `${Math.floor(seconds / 60)} min ago`;
  if (seconds < 86400) return `${Math.floor(seconds / 3600)} h ago`;
  return `${Math.floor(seconds / 86400)} d ago`;
}

const dateTimes = new Intl.DateTimeFormat('en-GB', { dateStyle: 'medium', timeStyle: 'short' });

export function formatDateTime(iso: string | null | undefined): string {
  return iso ? dateTimes.format(new Date(iso)) : '—';
}
