import { FormEvent, useRef, useState } from 'react';
import { session } from '../api/client';
import { LoginError } from '../api/session';
import { useModal } from './Dialog';

/**
 * The login form, as a modal dialog over the current screen: when a session ends, the screen
 * under it (and whatever the user typed there) stays mounted, and the requests it was making
 * go on once the user is back.
 */
export function LoginDialog() {
  const dialog = useRef<HTMLDialogElement>(null);
  const [username, setUsername] = useState('');
  const [password, setPassword] = useState('');
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<LoginError | null>(null);

  useModal(dialog);

  const submit = async (event: FormEvent) => {
    event.preventDefault();
    setBusy(true);
    setError(null);
    try {
      await session.login(username, password);
    } catch (e) {
      setError(e instanceof LoginError ? e : new LoginError(String(e), 'NETWORK', null));
      setBusy(false);
    }
  };

  return (
    <dialog ref={dialog} className="login" aria-labelledby="login-title" onCancel={(e) => e.preventDefault()}>
      <form onSubmit={submit}>
        <h2 id="login-title">Log in</h2>
        <p className="muted">Your session has ended or has not started yet.</p>
        <label>
          Username
          <input name="username" autoComplete="username" required value={username} onChange={(e) => setUsername(e.target.value)} autoFocus />
        </label>
        <label>
          Password
          <input name="password" type="password" autoComplete="current-password" required value={password} onChange={(e) => setPassword(e.target.value)} />
        </label>
        {error && (
          <p role="alert" className="error">
            {error.message}
            {error.requestId && <span className="request-id"> (request {error.requestId})</span>}
          </p>
        )}
        <button type="submit" className="primary" disabled={busy}>
          {busy ? 'Logging in…' : 'Log in'}
        </button>
      </form>
    </dialog>
  );
}
