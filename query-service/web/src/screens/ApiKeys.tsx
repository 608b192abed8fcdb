import { useMutation, useQuery, useQueryClient } from '@tanstack/react-query';
import { FormEvent, useState } from 'react';
import { command, unwrap } from '../api/client';
import type { Role } from '../api/useSession';
import { Dialog } from '../components/Dialog';
import { ErrorNotice } from '../components/ErrorNotice';
import { ACTIONS, ListTable } from '../components/ListTable';
import { formatDateTime } from '../lib/format';

const ROLES: Role[] = ['viewer', 'operator', 'admin'];

interface KeyInfo {
  id: string;
  name: string;
  prefix: string;
  revoked_at?: string | null;
  expires_at?: string | null;
}

/** A key's state as the API would treat it now. */
function keyState(key: KeyInfo, now = Date.now()): 'revoked' | 'expired' | 'active' {
  if (key.revoked_at) return 'revoked';
  if (key.expires_at && Date.parse(key.expires_at) <= now) return 'expired';
  return 'active';
}

/** The end of the chosen day in the browser's time zone, as the API wants it (RFC 3339). */
function endOfDay(date: string): string {
  return new Date(`${date}T23:59:59`).toISOString();
}

/** API keys: created with the key shown once, listed by prefix, revoked. */
export function ApiKeys() {
  const queryClient = useQueryClient();
  const keys = useQuery({ queryKey: ['api-keys'], queryFn: () => unwrap(command.GET('/api/v1/auth/api-keys')) });
  const [prefix, setPrefix] = useState('');
  const [name, setName] = useState('');
  const [role, setRole] = useState<Role>('viewer');
  const [expires, setExpires] = useState('');
  const [created, setCreated] = useState<{ name: string; key: string } | null>(null);
  const [revoking, setRevoking] = useState<KeyInfo | null>(null);
  const create = useMutation({
    mutationFn: () =>
      unwrap(command.POST('/api/v1/auth/api-keys', { body: { name, role, expires_at: expires ? endOfDay(expires) : null } })),
    onSuccess: (answer) => {
      setCreated({ name: answer.name, key: answer.key });
      setName('');
      setExpires('');
      queryClient.invalidateQueries({ queryKey: ['api-keys'] });
    },
  });
  const revoke = useMutation({
    mutationFn: (id: string) => unwrap(command.DELETE('/api/v1/auth/api-keys/{id}', { params: { path: { id } } })),
    onSuccess: () => {
      setRevoking(null);
      queryClient.invalidateQueries({ queryKey: ['api-keys'] });
    },
  });
  const submit = (event: FormEvent) => {
    event.preventDefault();
    setCreated(null);
    create.mutate();
  };
  const shown = (keys.data ?? []).filter((key) => key.prefix.startsWith(prefix.trim()));
  const today = new Date().toISOString().slice(0, 10);

  return (
    <section aria-labelledby="keys-title" className="admin-section">
      <h2 id="keys-title">API keys</h2>
      <form className="filters" onSubmit={submit} aria-label="New API key">
        <label className="grow">
          Name
          <input name="key-name" value={name} required maxLength={100} onChange={(e) => setName(e.target.value)} />
        </label>
        <label>
          Role
          <select name="key-role" value={role} onChange={(e) => setRole(e.target.value as Role)}>
            {ROLES.map((r) => (
              <option key={r}>{r}</option>
            ))}
          </select>
        </label>
        <label>
          Expires (optional)
          <input type="date" name="key-expires" min={today} value={expires} onChange={(e) => setExpires(e.target.value)} />
        </label>
        <button type="submit" className="primary" disabled={create.isPending}>
          Create key
        </button>
      </form>
      {create.error && <ErrorNotice error={create.error} what="create the key" />}
      {created && (
        <div className="notice" role="status" data-testid="new-api-key">
          <p>
            <strong>The key "{created.name}"</strong>, shown this once (only its hash is kept). Copy it now:
          </p>
          <div className="row">
            <input className="mono grow" readOnly value={created.key} aria-label="The new API key" onFocus={(e) => e.target.select()} />
            <button type="button" onClick={() => navigator.clipboard?.writeText(created.key).catch(() => undefined)}>
              Copy
            </button>
            <button type="button" onClick={() => setCreated(null)}>
              Done
            </button>
          </div>
        </div>
      )}
      <label className="inline">
        Find by prefix
        <input type="search" name="key-prefix" value={prefix} onChange={(e) => setPrefix(e.target.value)} className="mono" />
      </label>
      {keys.error && <ErrorNotice error={keys.error} what="load the API keys" />}
      <ListTable caption="API keys" columns={['Name', 'Prefix', 'Role', 'Created', 'Expires', 'Last used', 'State', ACTIONS]} busy={keys.isFetching}>
        {shown.map((key) => {
          const state = keyState(key);
          return (
            <tr key={key.id} data-testid="api-key-row" data-name={key.name}>
              <th scope="row" data-label="Name">
                {key.name}
              </th>
              <td data-label="Prefix" className="mono">
                {key.prefix}
              </td>
              <td data-label="Role">{key.role}</td>
              <td data-label="Created">{formatDateTime(key.created_at)}</td>
              <td data-label="Expires">{key.expires_at ? formatDateTime(key.expires_at) : 'never'}</td>
              <td data-label="Last used">{key.last_used_at ? formatDateTime(key.last_used_at) : 'never'}</td>
              <td data-label="State" data-testid="api-key-state">
                {state}
              </td>
              <td>
                {state !== 'revoked' && (
                  <button type="button" onClick={() => setRevoking(key)}>
                    Revoke<span className="sr-only"> {key.name}</span>
                  </button>
                )}
              </td>
            </tr>
          );
        })}
      </ListTable>
      {keys.data && shown.length === 0 && <p>No API key{prefix ? ' with this prefix' : ''}.</p>}
      {revoking && (
        <Dialog title="Revoke API key" onClose={() => setRevoking(null)}>
          <p>
            Revoke the key "{revoking.name}" (<span className="mono">{revoking.prefix}</span>)? Every request with it is refused from now on;
            this cannot be undone.
          </p>
          {revoke.error && <ErrorNotice error={revoke.error} what="revoke the key" />}
          <div className="actions">
            <button type="button" onClick={() => setRevoking(null)}>
              Cancel
            </button>
            <button type="button" className="primary danger" disabled={revoke.isPending} onClick={() => revoke.mutate(revoking.id)}>
              Revoke key
            </button>
          </div>
        </Dialog>
      )}
    </section>
  );
}
