// What every browser test shares: Debian's chromium (never a downloaded build), the platform's
// address (BROWSER_TEST_URL, the gateway started by deploy/local/browser-test.sh), the
// bootstrap admin, and a screenshot per test under BROWSER_TEST_OUT.
import { mkdirSync } from 'node:fs';
import { after, afterEach, before } from 'node:test';
import { chromium } from 'playwright-core';

export const BASE = process.env.BROWSER_TEST_URL ?? 'http://127.0.0.1:8000';
export const ADMIN = {
  username: process.env.BOOTSTRAP_ADMIN_USERNAME ?? 'admin',
  password: process.env.BOOTSTRAP_ADMIN_PASSWORD ?? 'admin-change-me',
};
export const SIMS = Number(process.env.BROWSER_TEST_SIMS ?? 50);
export const OUT = process.env.BROWSER_TEST_OUT ?? new URL('../../../target/browser-tests/', import.meta.url).pathname;

let browser;
/** Pages to screenshot when the running test ends (pass or fail). */
const pages = [];

export function useBrowser() {
  before(async () => {
    mkdirSync(OUT, { recursive: true });
    browser = await chromium.launch({
      executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
      // The sandbox needs user namespaces, which containers and root often lack.
      args: ['--no-sandbox', '--disable-dev-shm-usage'],
    });
  });
  afterEach(async (t) => {
    const name = t.name.replace(/[^a-z0-9]+/gi, '-').replace(/^-|-$/g, '').toLowerCase();
    for (const [i, page] of pages.entries()) {
      if (!page.isClosed()) await page.screenshot({ path: `${OUT}/${name}${i ? `-${i + 1}` : ''}.png`, fullPage: true });
    }
    pages.length = 0;
  });
  after(async () => browser?.close());
}

/**
 * A new browser context (its own cookies and HTTP cache: another browser profile) with `count`
 * pages; `storageState` carries another context's cookies over (a signed-in profile).
 */
export async function openPages(count = 1, viewport = { width: 1280, height: 900 }, storageState = undefined) {
  const context = await browser.newContext({ viewport, baseURL: BASE, storageState });
  context.setDefaultTimeout(15_000);
  const opened = [];
  for (let i = 0; i < count; i++) opened.push(await context.newPage());
  pages.push(...opened);
  return { context, pages: opened };
}

/** Logs in through the login dialog, which opens over whatever screen the page shows. */
export async function logIn(page, { username, password } = ADMIN) {
  const dialog = page.getByRole('dialog', { name: 'Log in' });
  await dialog.waitFor();
  await dialog.getByLabel('Username').fill(username);
  await dialog.getByLabel('Password').fill(password);
  await dialog.getByRole('button', { name: 'Log in' }).click();
  await dialog.waitFor({ state: 'detached' });
}

/**
 * The newest access token `page` sent to the API (it lives in the page's memory only): a
 * function returning it, or null before the first request.
 */
export function sentToken(page) {
  let token = null;
  page.on('request', (request) => {
    const auth = request.headers().authorization;
    if (auth?.startsWith('Bearer ') && request.url().includes('/api/v1/')) token = auth.slice(7);
  });
  return () => token;
}

/** Polls `check` (an async function returning truthy) until it holds or `ms` pass. */
export async function eventually(check, ms = 60_000, what = 'condition') {
  const deadline = Date.now() + ms;
  let last;
  while (Date.now() < deadline) {
    try {
      if (await check()) return;
    } catch (error) {
      last = error;
    }
    await new Promise((resolve) => setTimeout(resolve, 500));
  }
  throw new Error(`timed out waiting for ${what}${last ? `: ${last.message}` : ''}`);
}

let admin = null;

/**
 * An admin's access token from the API's JSON login (to set things up, as a script would),
 * one login per test file: logins are rate-limited.
 */
export async function adminToken() {
  admin ??= (async () => {
    const response = await fetch(`${BASE}/api/v1/auth/login`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify(ADMIN),
    });
    if (response.status !== 200) throw new Error(`admin login: ${response.status} ${await response.text()}`);
    return (await response.json()).access_token;
  })().catch((error) => {
    admin = null;
    throw error;
  });
  return admin;
}

/** A request to the API through the gateway with `token` (JSON in and out). */
export async function api(path, { token, method = 'GET', body, again = true } = {}) {
  const response = await fetch(`${BASE}${path}`, {
    method,
    headers: { Authorization: `Bearer ${token ?? (await adminToken())}`, ...(body ? { 'Content-Type': 'application/json' } : {}) },
    body: body ? JSON.stringify(body) : undefined,
  });
  // The cached admin token ran out: log in again once.
  if (response.status === 401 && !token && again) {
    admin = null;
    return api(path, { method, body, again: false });
  }
  const text = await response.text();
  let json;
  try {
    json = text ? JSON.parse(text) : undefined;
  } catch {
    json = undefined;
  }
  return { status: response.status, headers: response.headers, json, text };
}
