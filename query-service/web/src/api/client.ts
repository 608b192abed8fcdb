// The two APIs' typed clients (paths and bodies from their OpenAPI documents; see
// scripts/gen-api.mjs). Every request carries this tab's access token; a 401 refreshes once
// and retries; when the session is over the request waits for the user to log in again (the
// login dialog opens over the screen, which stays as it was) and then goes on.
import createClient from 'openapi-fetch';
import type { paths as CommandPaths } from './command';
import type { paths as QueryPaths } from './query';
import { browserSession, Session } from './session';

export const session: Session = browserSession();

/** An error answer of either API: its message and request id are shown as they are. */
export class ApiError extends Error {
  constructor(
    message: string,
    readonly status: number,
    readonly code: string,
    readonly requestId: string | null,
    /** The error's `details` (e.g. the validation report of a refused import). */
    readonly details: unknown = undefined,
  ) {
    super(message);
  }
}

export /** Resolves once the user is signed in (at once when they are). */
function signedIn(): Promise<void> {
  if (session.getState() === 'signed-in') return Promise.resolve();
  return new Promise((resolve) => {
    const stop = session.subscribe(() => {
      if (session.getState() === 'signed-in') {
        stop();
        resolve();
      }
    });
  });
}

async function authorised(request: Request): Promise<Response> {
  const send = (token: string) => {
    const attempt = request.clone();
    attempt.headers.set('Authorization', `Bearer ${token}`);
    const position = attempt.method === 'GET' ? consistencyToken() : null;
    if (position) attempt.headers.set('X-Consistency-Token', position);
    return fetch(attempt);
  };
  let token = await session.accessToken();
  while (token === null) {
    await signedIn();
    token = await session.accessToken();
  }
  const response = await send(token);
  if (response.status !== 401) return response;
  // The token was refused (expired early, or the user was disabled): refresh once and retry;
  // if the refresh is refused too, wait for a new login.
  let fresh = await session.refresh(token);
  while (fresh === null) {
    await signedIn();
    fresh = await session.accessToken();
  }
  return send(fresh);
}

const options = { baseUrl: '', fetch: authorised };
export const command = createClient<CommandPaths>(options);
export const query = createClient<QueryPaths>(options);

/** The data of an openapi-fetch answer, or its error thrown as an ApiError. */
export async function unwrap<T>(result: Promise<{ data?: T; error?: unknown; response: Response }>): Promise<T> {
  const { data, error, response } = await result;
  if (error === undefined && response.ok) return data as T;
  // openapi-fetch has read the body already: the error document is `error`.
  const detail = (error as { error?: { code?: string; message?: string; request_id?: string | null; details?: unknown } } | undefined)?.error;
  const requestId = detail?.request_id ?? response.headers.get('X-Request-Id');
  throw detail?.message
    ? new ApiError(detail.message, response.status, detail.code ?? `HTTP_${response.status}`, requestId, detail.details)
    : new ApiError(`The server answered ${response.status} ${response.statusText}.`, response.status, `HTTP_${response.status}`, requestId);
}

// After a command, the reads that follow carry its `position` as `X-Consistency-Token`, so
// the query API answers only once its read models show what the command did.
let consistency: { position: number; until: number } | null = null;
const FOLLOW_UP_MS = 15_000;

/** Records a command's answer: reads in the next seconds wait for its position. */
export function afterCommand(answer: { position: number }) {
  const position = Math.max(answer.position, consistency?.position ?? 0);
  consistency = { position, until: Date.now() + FOLLOW_UP_MS };
}

function consistencyToken(): string | null {
  if (consistency && Date.now() < consistency.until) return String(consistency.position);
  consistency = null;
  return null;
}

/**
 * A request with this tab's token for what the typed clients cannot send (a route of an API
 * not merged yet, a CSV body): `body` as JSON, or a string sent as it is with the
 * `Content-Type` given in `headers`. Answers the parsed JSON; errors as ApiError.
 */
export async function sendJson<T>(method: string, path: string, body?: unknown, headers: Record<string, string> = {}): Promise<T> {
  const init: RequestInit = { method, headers: { Accept: 'application/json', ...headers } };
  if (typeof body === 'string') init.body = body;
  else if (body !== undefined) {
    init.body = JSON.stringify(body);
    (init.headers as Record<string, string>)['Content-Type'] = 'application/json';
  }
  const response = await authorised(new Request(path, init));
  const text = await response.text();
  let parsed: unknown;
  try {
    parsed = text ? JSON.parse(text) : undefined;
  } catch {
    parsed = undefined;
  }
  return unwrap<T>(Promise.resolve(response.ok ? { data: parsed as T, response } : { error: parsed ?? {}, response }));
}

/**
 * Saves what the API answers at `path` as a file: the access token lives in memory, so a
 * plain link could not carry it.
 */
export async function download(path: string, fallbackName: string): Promise<void> {
  const response = await authorised(new Request(path, { headers: { Accept: 'text/csv' } }));
  if (!response.ok) {
    const error = await response.json().catch(() => ({}));
    await unwrap(Promise.resolve({ error, response }));
  }
  const name = /filename="([^"]+)"/.exec(response.headers.get('Content-Disposition') ?? '')?.[1] ?? fallbackName;
  const url = URL.createObjectURL(await response.blob());
  const link = Object.assign(document.createElement('a'), { href: url, download: name });
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
}
