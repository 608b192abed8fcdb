import { useMutation, useQuery, useQueryClient } from '@tanstack/react-query';
import { FormEvent, useState } from 'react';
import { command, session, unwrap } from '../api/client';
import type { Role } from '../api/useSession';
import { roleAtLeast } from '../api/useSession';
import { Dialog } from '../components/Dialog';
import { ErrorNotice } from '../components/ErrorNotice';
import { ACTIONS, ListTable } from '../components/ListTable';
import { formatDateTime } from '../lib/format';
import { ApiKeys } from './ApiKeys';

export const ROLES: Role[] = ['viewer', 'operator', 'admin'];

/** Users and API keys (admins only; the API refuses everyone else as well). */
export function Admin() {
  if (!roleAtLeast('admin')) {
    return (
      <>
        <h1>Admin</h1>
        <p>Only an admin can manage users and API keys.</p>
      </>
    );
  }
  return (
    <>
      <h1>Admin</h1>
      <Users />
      <ApiKeys />
    </>
  );
}

function Users() {
  const queryClient = useQueryClient();
  const users = useQuery({ queryKey: ['users'], queryFn: () => unwrap(command.GET('/api/v1/users')) });
  const change = useMutation({
    mutationFn: ({ id, ...body }: { id: string; role?: Role; disabled?: boolean }) =>
      unwrap(command.PATCH('/api/v1/users/{id}', { params: { path: { id } }, body })),
    onSuccess: () => queryClient.invalidateQueries({ queryKey: ['users'] }),
  });
  const [creating, setCreating] = useState(false);
  const me = session.claims()?.username;

  return (
    <section aria-labelledby="users-title" className="admin-section">
      <div className="row">
        <h2 id="users-title">Users</h2>
        <button type="button" onClick={() => setCreating(true)}>
          New user…
        </button>
      </div>
      {users.error && <ErrorNotice error={users.error} what="load the users" />}
      {change.error && <ErrorNotice error={change.error} what="change the user" />}
      <ListTable caption="Users" columns={['Username', 'Role', 'Status', 'Created', ACTIONS]} busy={users.isFetching || change.isPending}>
        {users.data?.map((user) => (
          <tr key={user.id} data-testid="user-row">
            <th scope="row" data-label="Username">
              {user.username}
              {user.username === me && <span className="muted small"> (you)</span>}
            </th>
            <td data-label="Role">
              <select
                aria-label={`Role of ${user.username}`}
                value={user.role}
                disabled={change.isPending}
                onChange={(e) => change.mutate({ id: user.id, role: e.target.value as Role })}
              >
                {ROLES.map((role) => (
                  <option key={role}>{role}</option>
                ))}
              </select>
            </td>
            <td data-label="Status">{user.disabled ? <span className="badge terminated">disabled</span> : <span className="badge active">enabled</span>}</td>
            <td data-label="Created">{formatDateTime(user.created_at)}</td>
            <td>
              <button type="button" disabled={change.isPending} onClick={() => change.mutate({ id: user.id, disabled: !user.disabled })}>
                {user.disabled ? 'Enable' : 'Disable'}
                <span className="sr-only"> {user.username}</span>
              </button>
            </td>
          </tr>
        ))}
      </ListTable>
      {creating && <CreateUser onClose={() => setCreating(false)} />}
    </section>
  );
}

function CreateUser({ onClose }: { onClose: () => void }) {
  const queryClient = useQueryClient();
  const [username, setUsername] = useState('');
  const [password, setPassword] = useState('');
  const [role, setRole] = useState<Role>('viewer');
  const create = useMutation({
    mutationFn: () => unwrap(command.POST('/api/v1/users', { body: { username, password, role } })),
    onSuccess: () => {
      queryClient.invalidateQueries({ queryKey: ['users'] });
      onClose();
    },
  });
  const submit = (event: FormEvent) => {
    event.preventDefault();
    create.mutate();
  };
  return (
    <Dialog title="New user" onClose={onClose}>
      <form onSubmit={submit} className="stack">
        <label>
          Username
          <input value={username} required minLength={3} maxLength={64} autoComplete="off" onChange={(e) => setUsername(e.target.value)} />
        </label>
        <label>
          Password
          <input type="password" value={password} required autoComplete="new-password" onChange={(e) => setPassword(e.target.value)} />
        </label>
        <label>
          Role
          <select value={role} onChange={(e) => setRole(e.target.value as Role)}>
            {ROLES.map((r) => (
              <option key={r}>{r}</option>
            ))}
          </select>
        </label>
        {create.error && <ErrorNotice error={create.error} what="create the user" />}
        <div className="actions">
          <button type="button" onClick={onClose}>
            Cancel
          </button>
          <button type="submit" className="primary" disabled={create.isPending}>
            Create user
          </button>
        </div>
      </form>
    </Dialog>
  );
}
