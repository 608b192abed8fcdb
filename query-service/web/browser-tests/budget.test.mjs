// The dashboard's budget (issue 9): the first load of the SIM table with 100,000 SIMs in the
// read model under 1 s on this machine, and the built JavaScript under 300 kB gzipped. The
// SIMs are written straight into `sims` on the browser test's database with the benches' fill
// (crates/testkit/src/sims_fill.sql), removed again at the end so the other tests see the
// simulator's fleet only. The figures are printed; docs/benchmarks.md keeps them.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { after, before, test } from 'node:test';
import { BUDGET, bundleSize } from '../scripts/check-size.mjs';
import { logIn, openPages, useBrowser } from './harness.mjs';

const FILLED = Number(process.env.BROWSER_TEST_BUDGET_SIMS ?? 100_000);
const FIRST_LOAD_MS = 1000;
/** Loads measured, each in a fresh profile; their median must be within the budget. */
const LOADS = 5;
// The fill's ICCIDs (8988303…); the simulator's are 8988280666….
const FILLED_ICCIDS = "iccid LIKE '8988303%'";

function psql(sql) {
  const url = process.env.DATABASE_URL;
  assert.ok(url, 'DATABASE_URL (set by deploy/local/browser-test.sh)');
  return execFileSync('psql', [url, '-X', '-q', '-v', 'ON_ERROR_STOP=1', '-At'], { input: sql, encoding: 'utf8' });
}

useBrowser();

before(() => {
  const fill = readFileSync(new URL('../../../crates/testkit/src/sims_fill.sql', import.meta.url), 'utf8');
  const started = Date.now();
  psql(`PREPARE fill(int) AS ${fill};\nEXECUTE fill(${FILLED});\nANALYZE sims;\n`);
  const total = Number(psql('SELECT count(*) FROM sims').trim());
  console.log(`budget: ${FILLED} SIMs written into sims in ${((Date.now() - started) / 1000).toFixed(1)} s (${total} in the read model)`);
  assert.ok(total >= FILLED);
});

after(() => psql(`DELETE FROM sims WHERE ${FILLED_ICCIDS}; ANALYZE sims;`));

test(`the SIM table's first load with ${FILLED} SIMs is under ${FIRST_LOAD_MS} ms`, async () => {
  // Sign in once; the measured loads run in fresh profiles (empty HTTP cache) holding only the
  // refresh cookie, as a returning user's first visit: the bundle, the token refresh and the
  // first page of rows all count.
  const { context, pages: [login] } = await openPages();
  await login.goto('/');
  await logIn(login);
  await login.getByRole('button', { name: 'Log out' }).waitFor();
  // Each load refreshes (rotating the cookie): the next profile takes the rotated one, since
  // a spent refresh token used again revokes the whole login.
  let signedIn = await context.storageState();

  const loads = [];
  for (let run = 0; run < LOADS; run++) {
    const { context: profile, pages: [page] } = await openPages(1, undefined, signedIn);
    // The instant (ms after navigation start) the first row of the table is in the document.
    await page.addInitScript(() => {
      const seen = () => document.querySelector('table.sims tbody td a');
      new MutationObserver((_, observer) => {
        if (seen()) {
          window.__firstRows = performance.now();
          observer.disconnect();
        }
      }).observe(document, { childList: true, subtree: true });
    });
    await page.goto('/sims');
    await page.locator('table.sims tbody td a').first().waitFor();
    const rows = await page.locator('table.sims tbody tr').count();
    assert.ok(rows >= 25, `a first page of rows (${rows})`);
    loads.push(await page.evaluate(() => window.__firstRows));
    signedIn = await profile.storageState();
  }
  const figures = loads.map((ms) => `${Math.round(ms)} ms`).join(', ');
  console.log(`budget: SIM table, navigation start → first page of rows rendered (fresh profile each): ${figures}`);
  // The median: the machine's two cores are shared (a build next door once took one load of
  // three to 1,063 ms while the others took 465 and 588); a slow page is slow in most loads.
  const median = [...loads].sort((a, b) => a - b)[Math.floor(LOADS / 2)];
  assert.ok(median < FIRST_LOAD_MS, `the median load took ${Math.round(median)} ms (budget ${FIRST_LOAD_MS} ms): ${figures}`);
});

test('the built JavaScript is under 300 kB gzipped', () => {
  const { files, total } = bundleSize();
  console.log(`budget: ${(total / 1024).toFixed(1)} kB of JavaScript gzipped in ${files.length} files (budget ${BUDGET / 1024} kB)`);
  assert.ok(files.length > 0, 'a built bundle (npm run build)');
  assert.ok(total <= BUDGET);
});
