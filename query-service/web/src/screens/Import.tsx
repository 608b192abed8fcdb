import { ChangeEvent, useState } from 'react';
import { Link } from 'wouter';
import { ApiError, sendJson } from '../api/client';
import { roleAtLeast } from '../api/useSession';
import { BulkJobStatus } from '../components/BulkJobStatus';
import { ErrorNotice } from '../components/ErrorNotice';
import { ListTable } from '../components/ListTable';
import { previewImport } from '../lib/csv';
import { formatCount } from '../lib/format';

interface Report {
  rows: number;
  valid_rows: number;
  invalid_rows: number;
  errors: { row: number; field: string; reason: string }[];
  truncated: boolean;
}
interface ImportAnswer {
  report: Report;
  job?: { id: string; total: number } | null;
}

const MAX_BYTES = 16 * 1024 * 1024;

/** The file's own idempotency key: importing the same file again finds the same job. */
async function fileKey(text: string): Promise<string> {
  const digest = await crypto.subtle.digest('SHA-256', new TextEncoder().encode(text));
  return `import-${[...new Uint8Array(digest)].map((b) => b.toString(16).padStart(2, '0')).join('')}`;
}

function importRequest(text: string, query: string, key?: string) {
  const headers: Record<string, string> = { 'Content-Type': 'text/csv' };
  if (key) headers['Idempotency-Key'] = key;
  return sendJson<ImportAnswer>('POST', `/api/v1/sims/import?${query}`, text, headers);
}

/**
 * CSV import of SIMs in three steps: choose the file (what it holds is shown at once), let the
 * API check every row (the report names row, field and reason; nothing is written), then
 * import it as one bulk job, idempotent per file, whose progress shows here.
 */
export function Import() {
  const [fileName, setFileName] = useState('');
  const [text, setText] = useState('');
  const [report, setReport] = useState<Report | null>(null);
  const [error, setError] = useState<unknown>(null);
  const [busy, setBusy] = useState<'check' | 'import' | null>(null);
  const [jobId, setJobId] = useState<string | null>(null);
  const preview = text ? previewImport(text) : null;

  if (!roleAtLeast('operator')) {
    return (
      <>
        <h1>Import SIMs</h1>
        <p>Only an operator or an admin can import SIMs.</p>
      </>
    );
  }

  const choose = async (event: ChangeEvent<HTMLInputElement>) => {
    const file = event.target.files?.[0];
    setReport(null);
    setError(null);
    setJobId(null);
    if (!file) return;
    if (file.size > MAX_BYTES) {
      setError(new Error('The file is larger than 16 MB: split it.'));
      return;
    }
    setFileName(file.name);
    setText(await file.text());
  };

  const check = async () => {
    setBusy('check');
    setError(null);
    try {
      setReport((await importRequest(text, 'validate_only=true')).report);
    } catch (e) {
      if (e instanceof ApiError && e.code === 'IMPORT_INVALID' && e.details) setReport(e.details as Report);
      else setError(e);
    } finally {
      setBusy(null);
    }
  };

  const run = async () => {
    setBusy('import');
    setError(null);
    try {
      const answer = await importRequest(text, 'dry_run=false', await fileKey(text));
      if (answer.job) setJobId(answer.job.id);
    } catch (e) {
      setError(e);
    } finally {
      setBusy(null);
    }
  };

  const valid = report !== null && report.invalid_rows === 0;
  return (
    <>
      <h1>Import SIMs</h1>
      <p className="muted">
        A CSV with a header naming its columns: <code>iccid</code> and <code>imsi</code> (required), <code>msisdn</code>, <code>label</code>,{' '}
        <code>tags</code> (separated by <code>;</code>). One bad row and nothing is written.
      </p>
      <ol className="steps">
        <li>
          <h2>Choose the file</h2>
          <label>
            CSV file
            <input type="file" accept=".csv,text/csv" onChange={choose} disabled={busy !== null} />
          </label>
          {preview && (
            <div data-testid="import-preview">
              <p>
                {fileName}: {formatCount(preview.rows)} SIM{preview.rows === 1 ? '' : 's'}, columns {preview.columns.join(', ') || '(none)'}.
              </p>
              {preview.headerProblems.length > 0 && (
                <ul className="field-error">
                  {preview.headerProblems.map((p) => (
                    <li key={p}>{p}</li>
                  ))}
                </ul>
              )}
              {preview.sample.length > 0 && (
                <ListTable caption="The first rows" captionShown columns={preview.columns}>
                  {preview.sample.map((row, i) => (
                    <tr key={i}>
                      {preview.columns.map((c, j) => (
                        <td key={j} data-label={c}>
                          {row[j] ?? ''}
                        </td>
                      ))}
                    </tr>
                  ))}
                </ListTable>
              )}
            </div>
          )}
        </li>
        <li>
          <h2>Check every row</h2>
          <button type="button" onClick={check} disabled={!text || busy !== null}>
            {busy === 'check' ? 'Checking…' : 'Check the file'}
          </button>
          {report && <ReportView report={report} />}
        </li>
        <li>
          <h2>Import</h2>
          <button type="button" className="primary" onClick={run} disabled={!valid || busy !== null || jobId !== null}>
            {busy === 'import' ? 'Submitting…' : `Import ${formatCount(report?.valid_rows ?? 0)} SIMs`}
          </button>
          {jobId && (
            <>
              <BulkJobStatus id={jobId} />
              <p className="small">
                SIMs that exist already are reported as refused; the others are registered. <Link href={`/jobs/${jobId}`}>Every SIM's outcome</Link>.
              </p>
            </>
          )}
        </li>
      </ol>
      {error !== null && <ErrorNotice error={error} what="import the file" />}
    </>
  );
}

function ReportView({ report }: { report: Report }) {
  if (report.invalid_rows === 0) {
    return (
      <p role="status" className="notice" data-testid="import-report">
        All {formatCount(report.rows)} rows are valid.
      </p>
    );
  }
  return (
    <div role="alert" data-testid="import-report">
      <p className="error">
        {formatCount(report.invalid_rows)} of {formatCount(report.rows)} rows are invalid; nothing was written. Correct the file and choose it again.
      </p>
      <ListTable caption={`Problems${report.truncated ? ' (the first 1,000)' : ''}`} captionShown columns={['Line', 'Field', 'Reason']}>
        {report.errors.map((e, i) => (
          <tr key={i}>
            <td data-label="Line">{e.row}</td>
            <td data-label="Field">{e.field}</td>
            <td data-label="Reason">{e.reason}</td>
          </tr>
        ))}
      </ListTable>
    </div>
  );
}
