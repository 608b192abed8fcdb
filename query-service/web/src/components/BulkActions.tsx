import { FormEvent, useState } from 'react';
import { command, download, unwrap } from '../api/client';
import { roleAtLeast } from '../api/useSession';
import { BULK_ACTIONS, BulkActionName, bulkParams, BulkForm, describeBulk, EMPTY_FORM, exportPath } from '../lib/bulk';
import { formatCount } from '../lib/format';
import { BulkJobStatus } from './BulkJobStatus';
import { Dialog } from './Dialog';
import { ErrorNotice } from './ErrorNotice';

interface Props {
  /** The ICCIDs ticked in the table. */
  selected: string[];
  /** The list's current filter (`GET /sims` parameters without paging). */
  filter: Record<string, string>;
  /** How many SIMs match the filter, and whether that is exact. */
  matching: { total: number; exact: boolean } | null;
  /** The job was accepted: the selection has done its work. */
  onSubmitted: () => void;
}

type Target = 'selected' | 'filter';

/**
 * The SIM table's actions: export the current filter as CSV (everyone), and the bulk actions
 * (operators), each confirmed in a dialog that says how many SIMs and what will happen, then
 * submitted as one bulk job whose progress shows below the table's header.
 */
export function BulkActions({ selected, filter, matching, onSubmitted }: Props) {
  const [action, setAction] = useState<BulkActionName | null>(null);
  const [jobId, setJobId] = useState<string | null>(null);
  const [exportError, setExportError] = useState<unknown>(null);
  const [exporting, setExporting] = useState(false);
  const operator = roleAtLeast('operator');

  const exportCsv = async () => {
    setExporting(true);
    setExportError(null);
    try {
      await download(exportPath(filter), 'sims.csv');
    } catch (e) {
      setExportError(e);
    } finally {
      setExporting(false);
    }
  };

  return (
    <section className="bulk" aria-label="Actions on SIMs">
      <div className="bulk-bar">
        {operator &&
          (Object.keys(BULK_ACTIONS) as BulkActionName[]).map((name) => (
            <button key={name} type="button" onClick={() => setAction(name)} disabled={selected.length === 0 && !matching?.total}>
              {BULK_ACTIONS[name].label}…
            </button>
          ))}
        <button type="button" onClick={exportCsv} disabled={exporting} aria-describedby="export-hint">
          {exporting ? 'Exporting…' : 'Export CSV'}
        </button>
        <span id="export-hint" className="muted small">
          Every SIM that matches the current search and filters.
        </span>
      </div>
      {exportError !== null && <ErrorNotice error={exportError} what="export the SIMs" />}
      {jobId && <BulkJobStatus id={jobId} compact />}
      {action && (
        <BulkDialog
          action={action}
          selected={selected}
          filter={filter}
          matching={matching}
          onClose={() => setAction(null)}
          onAccepted={(id) => {
            setAction(null);
            setJobId(id);
            onSubmitted();
          }}
        />
      )}
    </section>
  );
}

function BulkDialog({
  action,
  selected,
  filter,
  matching,
  onClose,
  onAccepted,
}: Pick<Props, 'selected' | 'filter' | 'matching'> & { action: BulkActionName; onClose: () => void; onAccepted: (id: string) => void }) {
  const [target, setTarget] = useState<Target>(selected.length > 0 ? 'selected' : 'filter');
  const [form, setForm] = useState<BulkForm>(EMPTY_FORM);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>(null);
  // One key per confirmation: a retried submit (a lost answer) finds the same job.
  const [idempotencyKey] = useState(() => crypto.randomUUID());
  const count = target === 'selected' ? selected.length : (matching?.total ?? 0);
  const approximate = target === 'filter' && matching?.exact === false;
  const checked = bulkParams(action, form);
  const title = `${BULK_ACTIONS[action].label} SIMs`;

  const submit = async (event: FormEvent) => {
    event.preventDefault();
    if ('problem' in checked) return;
    setBusy(true);
    setError(null);
    try {
      const accepted = await unwrap(
        command.POST('/api/v1/bulk-jobs', {
          params: { header: { 'Idempotency-Key': idempotencyKey } },
          body: {
            action,
            params: checked.params,
            // The document types `filter` as a bare object; it takes the list's parameters.
            ...(target === 'selected' ? { iccids: selected } : { filter: filter as Record<string, never> }),
          },
        }),
      );
      onAccepted(accepted.id);
    } catch (e) {
      setError(e);
      setBusy(false);
    }
  };

  return (
    <Dialog title={title} onClose={onClose}>
      <form onSubmit={submit} className="stack">
        <fieldset>
          <legend>Which SIMs</legend>
          <label>
            <input type="radio" name="target" checked={target === 'selected'} disabled={selected.length === 0} onChange={() => setTarget('selected')} />
            The {formatCount(selected.length)} selected
          </label>
          <label>
            <input type="radio" name="target" checked={target === 'filter'} disabled={!matching?.total} onChange={() => setTarget('filter')} />
            Every SIM matching the search and filters ({matching?.exact === false ? 'about ' : ''}
            {formatCount(matching?.total ?? 0)})
          </label>
        </fieldset>
        {action === 'top_up' && (
          <label>
            Quota
            <select value={form.quota} onChange={(e) => setForm({ ...form, quota: e.target.value as BulkForm['quota'] })}>
              <option value="data">Data</option>
              <option value="sms">SMS</option>
            </select>
          </label>
        )}
        {action === 'add_tags' && (
          <label>
            Tags to add (comma-separated)
            <input value={form.tags} required onChange={(e) => setForm({ ...form, tags: e.target.value })} />
          </label>
        )}
        {action === 'send_sms' && (
          <label>
            Message
            <textarea value={form.payload} required rows={3} maxLength={918} onChange={(e) => setForm({ ...form, payload: e.target.value })} />
          </label>
        )}
        <p className="confirm" data-testid="bulk-confirmation">
          {describeBulk(action, count, form, approximate)}
        </p>
        {'problem' in checked && <p className="field-error">{checked.problem}</p>}
        {error !== null && <ErrorNotice error={error} what="submit the job" />}
        <div className="actions">
          <button type="button" onClick={onClose}>
            Cancel
          </button>
          <button type="submit" className="primary" disabled={busy || count === 0 || 'problem' in checked}>
            {busy ? 'Submitting…' : `${BULK_ACTIONS[action].label} ${formatCount(count)} SIM${count === 1 ? '' : 's'}`}
          </button>
        </div>
      </form>
    </Dialog>
  );
}
