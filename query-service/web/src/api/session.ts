// The browser session: the access token lives in this tab's memory only; the refresh token is
// the command API's HttpOnly `simp_refresh` cookie. Refreshes are serialised across tabs with
// the Web Locks API (two tabs presenting the same cookie at once would trip the API's reuse
// detection and revoke the login), and new tokens and logouts are announced to the other tabs
// on a BroadcastChannel, so one refresh serves every tab and a logout ends every tab's session.

export type SessionState = 'unknown' | 'signed-in' | 'signed-out';

export type AuthMessage =
  | { type: 'token'; token: string; expiresAt: number }
  | { type: 'logout' };

export interface Channel {
  postMessage(message: AuthMessage): void;
  onmessage: ((event: { data: AuthMessage }) => void) | null;
}

export interface SessionDeps {
  fetch: (input: string, init: RequestInit) => Promise<Response>;
  /** Runs `task` while holding the named lock in every tab of this origin. */
  withLock: <T>(name: string, task: () => Promise<T>) => Promise<T>;
  channel: Channel | null;
  now: () => number;
}

/** A failed login: the API's message and request id, to show as they are. */
export class LoginError extends Error {
  constructor(
    message: string,
    readonly code: string,
    readonly requestId: string | null,
  ) {
    super(message);
  }
}

const AUTH = '/api/v1/auth';
/** Refresh this long before the access token expires, so a request never carries a stale one. */
const EARLY_MS = 30_000;

export class Session {
  private token: string | null = null;
  private expiresAt = 0;
  private state: SessionState = 'unknown';
  private listeners = new Set<() => void>();
  private logoutListeners = new Set<() => void>();
  /** This tab's refresh in flight: concurrent callers share it. */
  private refreshing: Promise<string | null> | null = null;

  constructor(private readonly deps: SessionDeps) {
    if (deps.channel) {
      deps.channel.onmessage = ({ data }) => {
        if (data.type === 'token') this.adopt(data.token, data.expiresAt);
        else this.loggedOut();
      };
    }
  }

  getState(): SessionState {
    return this.state;
  }

  /** Who is signed in, from the access token's claims (for display; the API decides). */
  claims(): { username: string; role: 'viewer' | 'operator' | 'admin' } | null {
    const payload = this.token?.split('.')[1];
    if (!payload) return null;
    try {
      const binary = atob(payload.replace(/-/g, '+').replace(/_/g, '/'));
      const json = new TextDecoder().decode(Uint8Array.from(binary, (c) => c.charCodeAt(0)));
      const { username, role } = JSON.parse(json);
      return typeof username === 'string' && ['viewer', 'operator', 'admin'].includes(role) ? { username, role } : null;
    } catch {
      return null;
    }
  }

  subscribe(listener: () => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** A token fit to send now: the one in memory, or a refreshed one; null when signed out. */
  async accessToken(): Promise<string | null> {
    if (this.token && this.deps.now() < this.expiresAt - EARLY_MS) return this.token;
    return this.refresh(this.token);
  }

  /**
   * Exchanges the refresh cookie for a new access token, unless another tab (or an earlier
   * call) already replaced `stale` while this one waited for the lock.
   */
  refresh(stale: string | null): Promise<string | null> {
    this.refreshing ??= this.deps
      .withLock('simp-refresh', async () => {
        if (this.token && this.token !== stale && this.deps.now() < this.expiresAt - EARLY_MS) {
          return this.token;
        }
        const response = await this.deps.fetch(`${AUTH}/refresh`, {
          method: 'POST',
          headers: { 'Content-Type': 'application/json' },
          body: '{}',
          credentials: 'same-origin',
        });
        if (!response.ok) {
          // Only an answer about the credentials ends the session; a 5xx or a network error
          // is thrown to the caller, and the next request tries again.
          if (response.status === 401 || response.status === 403) {
            this.drop();
            return null;
          }
          throw await errorOf(response);
        }
        return this.accept(await response.json());
      })
      .finally(() => {
        this.refreshing = null;
      });
    return this.refreshing;
  }

  async login(username: string, password: string): Promise<void> {
    const response = await this.deps.fetch(`${AUTH}/login`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ username, password, session: 'cookie' }),
      credentials: 'same-origin',
    });
    if (!response.ok) throw await errorOf(response);
    this.accept(await response.json());
  }

  /** Ends the login (the API revokes the cookie's family) here and in every other tab. */
  async logout(): Promise<void> {
    try {
      await this.deps.fetch(`${AUTH}/logout`, {
        method: 'POST',
        headers: { 'Content-Type': 'application/json' },
        body: '{}',
        credentials: 'same-origin',
      });
    } finally {
      this.loggedOut();
      this.deps.channel?.postMessage({ type: 'logout' });
    }
  }

  /** Called when the user logs out here or in another tab (not when a session expires). */
  onLogout(listener: () => void): () => void {
    this.logoutListeners.add(listener);
    return () => this.logoutListeners.delete(listener);
  }

  private loggedOut() {
    this.drop();
    this.logoutListeners.forEach((listener) => listener());
  }

  private accept(body: { access_token: string; expires_in: number }): string {
    const expiresAt = this.deps.now() + body.expires_in * 1000;
    this.adopt(body.access_token, expiresAt);
    this.deps.channel?.postMessage({ type: 'token', token: body.access_token, expiresAt });
    return body.access_token;
  }

  private adopt(token: string, expiresAt: number) {
    this.token = token;
    this.expiresAt = expiresAt;
    this.set('signed-in');
  }

  private drop() {
    this.token = null;
    this.expiresAt = 0;
    this.set('signed-out');
  }

  private set(state: SessionState) {
    const changed = this.state !== state;
    this.state = state;
    if (changed) this.listeners.forEach((listener) => listener());
  }
}

async function errorOf(response: Response): Promise<LoginError> {
  const requestId = response.headers.get('X-Request-Id');
  try {
    const body = await response.json();
    return new LoginError(body.error.message, body.error.code, body.error.request_id ?? requestId);
  } catch {
    return new LoginError(`The server answered ${response.status}.`, 'HTTP_' + response.status, requestId);
  }
}

/** The browser's session: Web Locks and a BroadcastChannel where the browser has them. */
export function browserSession(): Session {
  const locks = typeof navigator !== 'undefined' ? navigator.locks : undefined;
  let local: Promise<unknown> = Promise.resolve();
  return new Session({
    fetch: (input, init) => fetch(input, init),
    withLock: (name, task) =>
      locks
        ? (locks.request(name, task) as Promise<Awaited<ReturnType<typeof task>>>)
        : // Without Web Locks (an old browser): serialised within this tab only.
          (local = local.then(task, task)) as ReturnType<typeof task>,
    channel: typeof BroadcastChannel !== 'undefined' ? (new BroadcastChannel('simp-auth') as unknown as Channel) : null,
    now: () => Date.now(),
  });
}
