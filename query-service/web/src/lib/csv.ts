// CSV as the import reads it (RFC 4180: quoted fields, doubled quotes, CRLF or LF), so the
// import screen can show what the file holds before the API checks it, and the text the API
// sends back (items of a job) can be read the same way.

/** The file's records, each a list of fields; a final empty line is no record. */
export function parseCsv(text: string): string[][] {
  const records: string[][] = [];
  let record: string[] = [];
  let field = '';
  let quoted = false;
  let i = text.charCodeAt(0) === 0xfeff ? 1 : 0; // a byte-order mark is not data
  for (; i < text.length; i++) {
    const c = text[i];
    if (quoted) {
      if (c === '"') {
        if (text[i + 1] === '"') {
          field += '"';
          i++;
        } else {
          quoted = false;
        }
      } else {
        field += c;
      }
    } else if (c === '"' && field === '') {
      quoted = true;
    } else if (c === ',') {
      record.push(field);
      field = '';
    } else if (c === '\n' || c === '\r') {
      if (c === '\r' && text[i + 1] === '\n') i++;
      record.push(field);
      records.push(record);
      record = [];
      field = '';
    } else {
      field += c;
    }
  }
  if (field !== '' || record.length > 0) {
    record.push(field);
    records.push(record);
  }
  return records;
}

export const IMPORT_COLUMNS = ['iccid', 'imsi', 'msisdn', 'label', 'tags'] as const;
const REQUIRED = ['iccid', 'imsi'];

export interface ImportPreview {
  /** The header's columns as written. */
  columns: string[];
  /** Data rows (blank lines not counted). */
  rows: number;
  /** The first rows, to show. */
  sample: string[][];
  /** Problems with the header that make every row unreadable (the API says the same). */
  headerProblems: string[];
}

/** What a file holds, read before it is sent: the API's validation report is the authority. */
export function previewImport(text: string, sampleSize = 5): ImportPreview {
  const [header = [], ...rest] = parseCsv(text);
  const data = rest.filter((r) => r.some((f) => f.trim() !== ''));
  const columns = header.map((c) => c.trim());
  const known = columns.map((c) => c.toLowerCase());
  const headerProblems: string[] = [];
  for (const c of columns) {
    if (!(IMPORT_COLUMNS as readonly string[]).includes(c.toLowerCase())) headerProblems.push(`unknown column "${c}"`);
  }
  for (const r of REQUIRED) {
    if (!known.includes(r)) headerProblems.push(`the column "${r}" is missing`);
  }
  return { columns, rows: data.length, sample: data.slice(0, sampleSize), headerProblems };
}

/** A value written into a CSV cell (quoted when it must be). */
export function csvCell(value: string): string {
  return /[",\r\n]/.test(value) ? `"${value.replace(/"/g, '""')}"` : value;
}
