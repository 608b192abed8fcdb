import { describe, expect, it } from 'vitest';
import { AuthMessage, Channel, Session, SessionDeps } from './session';

// A fake command API with the real rules that matter here: the refresh cookie rotates on every
// refresh, and a cookie presented twice revokes the login (reuse detection).
class FakeAuthApi {
  cookie: string | null = null;
  revoked = false;
  refreshes = 0;
  private serial = 0;

  fetch = async (input: string, init: RequestInit): Promise<Response> => {
    const presented = this.cookie;
    await new Promise((resolve) => setTimeout(resolve, 5));
    if (input.endsWith('/login')) {
      const { password, session } = JSON.parse(String(init.body));
      expect(session).toBe('cookie');
      if (password !== 'right') return error(401, 'INVALID_CREDENTIALS', 'wrong username or password');
      this.revoked = false;
      return this.issue();
    }
    if (input.endsWith('/refresh')) {
      this.refreshes++;
      if (this.revoked || presented === null) return error(401, 'INVALID_TOKEN', 'no session');
      if (presented !== this.cookie) {
        this.revoked = true;
        return error(401, 'TOKEN_REUSED', 'refresh token reused');
      }
      return this.issue();
    }
    if (input.endsWith('/logout')) {
      this.revoked = true;
      this.cookie = null;
      return new Response(null, { status: 204 });
    }
    throw new Error(`unexpected ${input}`);
  };

  private issue(): Response {
    this.serial++;
    this.cookie = `cookie-${this.serial}`;
    return Response.json({ access_token: `token-${this.serial}`, token_type: 'bearer', expires_in: 900 });
  }
}

function error(status: number, code: string, message: string): Response {
  return Response.json({ error: { code, message, details: {}, request_id: `req-${code}` } }, { status });
}

/** One origin's Web Locks: tasks under the same name run one after the other. */
function locks() {
  const tails = new Map<string, Promise<unknown>>();
  return <T>(name: string, task: () => Promise<T>): Promise<T> => {
    const run = (tails.get(name) ?? Promise.resolve()).then(task, task);
    tails.set(name, run.catch(() => undefined));
    return run;
  };
}

/** BroadcastChannel: a message reaches every other member, asynchronously. */
function bus() {
  const members: Channel[] = [];
  return () => {
    const channel: Channel = {
      onmessage: null,
      postMessage(message: AuthMessage) {
        for (const other of members) {
          if (other !== channel) queueMicrotask(() => other.onmessage?.({ data: message }));
        }
      },
    };
    members.push(channel);
    return channel;
  };
}

function tabs(api: FakeAuthApi, count: number, withLock: SessionDeps['withLock'] = locks()) {
  const join = bus();
  let now = 1_000_000;
  const clock = { advance: (ms: number) => (now += ms) };
  const sessions = Array.from({ length: count }, () => new Session({ fetch: api.fetch, withLock, channel: join(), now: () => now }));
  return { sessions, clock };
}

describe('Session', () => {
  it('starts unknown, and is signed out when the cookie refresh is refused', async () => {
    const api = new FakeAuthApi();
    const [tab] = tabs(api, 1).sessions;
    expect(tab!.getState()).toBe('unknown');
    expect(await tab!.accessToken()).toBeNull();
    expect(tab!.getState()).toBe('signed-out');
  });

  it('logs in with a cookie session and keeps the token in memory until it nears expiry', async () => {
    const api = new FakeAuthApi();
    const { sessions, clock } = tabs(api, 1);
    const tab = sessions[0]!;
    await tab.login('admin', 'right');
    expect(tab.getState()).toBe('signed-in');
    expect(await tab.accessToken()).toBe('token-1');
    expect(api.refreshes).toBe(0);
    clock.advance(880_000); // within 30 s of the 900 s expiry
    expect(await tab.accessToken()).toBe('token-2');
    expect(api.refreshes).toBe(1);
  });

  it('shows the API message and request id of a refused login', async () => {
    const [tab] = tabs(new FakeAuthApi(), 1).sessions;
    await expect(tab!.login('admin', 'wrong')).rejects.toMatchObject({
      message: 'wrong username or password',
      requestId: 'req-INVALID_CREDENTIALS',
    });
    expect(tab!.getState()).toBe('unknown');
  });

  it('shares one refresh among concurrent callers of a tab', async () => {
    const api = new FakeAuthApi();
    const [tab] = tabs(api, 1).sessions;
    await tab!.login('admin', 'right');
    const tokens = await Promise.all([tab!.refresh('token-1'), tab!.refresh('token-1'), tab!.refresh('token-1')]);
    expect(tokens).toEqual(['token-2', 'token-2', 'token-2']);
    expect(api.refreshes).toBe(1);
  });

  it('serialises refreshes across tabs so the login survives two tabs refreshing at once', async () => {
    const api = new FakeAuthApi();
    const { sessions } = tabs(api, 3);
    await sessions[0]!.login('admin', 'right');
    await new Promise((resolve) => setTimeout(resolve, 0)); // the broadcast
    const tokens = await Promise.all(sessions.map((tab) => tab.refresh('token-1')));
    expect(api.revoked).toBe(false);
    expect(new Set(tokens).size).toBe(1);
    expect(tokens[0]).not.toBeNull();
    // The first refresh is announced; the tabs waiting for the lock take it instead of
    // presenting the cookie again.
    expect(api.refreshes).toBe(1);
  });

  it('trips the reuse detection without the lock (why the lock is there)', async () => {
    const api = new FakeAuthApi();
    const noLock = <T>(_: string, task: () => Promise<T>) => task();
    const { sessions } = tabs(api, 2, noLock);
    await sessions[0]!.login('admin', 'right');
    await Promise.all(sessions.map((tab) => tab.refresh('token-1')));
    expect(api.revoked).toBe(true);
  });

  it('ends the session in every tab on logout', async () => {
    const api = new FakeAuthApi();
    const { sessions } = tabs(api, 2);
    await sessions[0]!.login('admin', 'right');
    await new Promise((resolve) => setTimeout(resolve, 0));
    expect(sessions[1]!.getState()).toBe('signed-in');
    const changes: string[] = [];
    sessions[1]!.subscribe(() => changes.push(sessions[1]!.getState()));
    sessions[1]!.onLogout(() => changes.push('logout heard'));
    await sessions[0]!.logout();
    await new Promise((resolve) => setTimeout(resolve, 0));
    expect(sessions.map((tab) => tab.getState())).toEqual(['signed-out', 'signed-out']);
    expect(changes).toEqual(['signed-out', 'logout heard']);
    expect(await sessions[1]!.accessToken()).toBeNull();
  });

  it('keeps the session when the refresh fails for another reason than the credentials', async () => {
    const api = new FakeAuthApi();
    const [tab] = tabs(api, 1).sessions;
    await tab!.login('admin', 'right');
    const down = new Session({
      fetch: async () => error(503, 'DATABASE_UNAVAILABLE', 'the database does not answer'),
      withLock: locks(),
      channel: null,
      now: () => 0,
    });
    await expect(down.refresh(null)).rejects.toMatchObject({ code: 'DATABASE_UNAVAILABLE' });
    expect(down.getState()).toBe('unknown');
  });
});
