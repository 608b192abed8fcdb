import { FormEvent, useState } from 'react';
import { command, unwrap } from '../../api/client';
import type { SimView } from '../../api/types';
import { ErrorNotice } from '../../components/ErrorNotice';
import { conflictHint, ifMatch, refusedAtVersion, useSimCommand } from './common';

interface Draft {
  label: string;
  tags: string;
  imeiLock: boolean;
  /** The SIM's version the draft started from: the PATCH's If-Match. */
  version: number;
}

const draftOf = (sim: SimView): Draft => ({ label: sim.label ?? '', tags: sim.tags.join(', '), imeiLock: sim.imei_lock, version: sim.version });
export const parseTags = (text: string) => [...new Set(text.split(',').map((t) => t.trim()).filter(Boolean))];

/** Label, tags and IMEI lock, saved with If-Match so that nobody's change is overwritten unseen. */
export function EditSim({ sim }: { sim: SimView }) {
  const [draft, setDraft] = useState<Draft | null>(null);
  const save = useSimCommand(sim.iccid, ({ version, ...body }: { version: number; label?: string | null; tags?: string[]; imei_lock?: boolean }) =>
    unwrap(command.PATCH('/api/v1/sims/{iccid}', { params: { path: { iccid: sim.iccid } }, body, ...ifMatch(version) })),
  );

  if (!draft) {
    return (
      <button type="button" onClick={() => (save.reset(), setDraft(draftOf(sim)))}>
        Edit label, tags, IMEI lock
      </button>
    );
  }

  const submit = (event: FormEvent) => {
    event.preventDefault();
    const label = draft.label.trim() || null;
    const tags = parseTags(draft.tags);
    const changes = {
      ...(label !== sim.label ? { label } : {}),
      ...(tags.join('\u0000') !== sim.tags.join('\u0000') ? { tags } : {}),
      ...(draft.imeiLock !== sim.imei_lock ? { imei_lock: draft.imeiLock } : {}),
    };
    if (Object.keys(changes).length === 0) return setDraft(null);
    save.mutate({ version: draft.version, ...changes }, { onSuccess: () => setDraft(null) });
  };
  const stale = draft.version !== sim.version;
  // After a 412, until the page shows the version that won, "the latest" is not here yet.
  const behind = (refusedAtVersion(save.error) ?? 0) > sim.version;

  return (
    <form className="edit-form" onSubmit={submit} aria-label="Edit the SIM">
      <label>
        Label
        <input value={draft.label} maxLength={200} onChange={(e) => setDraft({ ...draft, label: e.target.value })} disabled={save.isPending} />
      </label>
      <label>
        Tags (comma-separated)
        <input value={draft.tags} onChange={(e) => setDraft({ ...draft, tags: e.target.value })} disabled={save.isPending} />
      </label>
      <label className="inline">
        <input type="checkbox" checked={draft.imeiLock} onChange={(e) => setDraft({ ...draft, imeiLock: e.target.checked })} disabled={save.isPending} />
        IMEI lock (the SIM works only in the device whose IMEI is recorded)
      </label>
      {stale && !save.error && (
        <p className="small" role="status">
          The SIM changed since you started editing (version {draft.version}, now {sim.version}); saving will be refused.
        </p>
      )}
      {save.error && (
        <>
          <ErrorNotice error={save.error} what="save the changes" />
          {conflictHint(save.error) && (
            <p className="small">
              {conflictHint(save.error)}{' '}
              {behind ? (
                <span className="progress" aria-live="polite">
                  Reading its latest state…
                </span>
              ) : (
                <button type="button" className="link" onClick={() => (save.reset(), setDraft(draftOf(sim)))}>
                  Start again from the latest
                </button>
              )}
            </p>
          )}
        </>
      )}
      {save.isPending && <p className="progress" aria-live="polite">Saving and waiting for the read model…</p>}
      <div className="actions" style={{ justifyContent: 'flex-start' }}>
        <button type="submit" className="primary" disabled={save.isPending}>
          Save
        </button>
        <button type="button" onClick={() => setDraft(null)} disabled={save.isPending}>
          Cancel
        </button>
      </div>
    </form>
  );
}
