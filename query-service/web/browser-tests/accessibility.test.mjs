// Accessibility (issue 9: "keyboard navigation and labels meet WCAG AA for forms and tables"):
// axe-core (npm, injected into the page) checks every screen, its dialogs and forms open, at
// 1280 px and at phone width against WCAG 2.0/2.1 A and AA; and the keyboard alone opens a SIM
// from the table and goes through a dialog, focus returning to the button that opened it.
import assert from 'node:assert/strict';
import { appendFileSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { test } from 'node:test';
import { api, eventually, logIn, openPages, OUT, useBrowser } from './harness.mjs';

useBrowser();

const AXE_SOURCE = readFileSync(createRequire(import.meta.url).resolve('axe-core/axe.min.js'), 'utf8');
const TAGS = ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa'];
const WIDTHS = [
  ['1280 px', { width: 1280, height: 900 }],
  ['phone width', { width: 390, height: 844 }],
];

/** Runs axe over the page as it is now; returns its violations, each with where it was seen. */
async function axe(page, screen) {
  // Evaluated through the DevTools protocol, not as a <script>: the gateway's Content Security
  // Policy (script-src 'self') rightly refuses inline scripts, and the tests run under it.
  if (!(await page.evaluate(() => 'axe' in window))) await page.evaluate(AXE_SOURCE);
  const { violations, passes, incomplete } = await page.evaluate(
    (tags) =>
      window.axe.run(document, { runOnly: { type: 'tag', values: tags } }).then((r) => ({
        violations: r.violations,
        passes: r.passes.length,
        // What axe could not decide alone (e.g. contrast over a translucent backdrop).
        incomplete: r.incomplete.map((i) => ({ id: i.id, nodes: i.nodes.map((n) => `${n.target.join(' ')}: ${n.any[0]?.message ?? ''}`) })),
      })),
    TAGS,
  );
  const review = incomplete.map((i) => `${i.id}×${i.nodes.length}`).join(' ');
  console.log(`axe [${screen}]: ${passes} rules pass, ${violations.length} violated${review ? `, to review: ${review}` : ''}`);
  // What axe leaves to a person, kept beside the screenshots.
  if (incomplete.length) appendFileSync(`${OUT}/axe-to-review.txt`, `[${screen}]\n${incomplete.map((i) => i.nodes.map((n) => `  ${i.id} ${n}`).join('\n')).join('\n')}\n`);
  return violations.map((v) => ({
    screen,
    id: v.id,
    impact: v.impact,
    help: v.help,
    nodes: v.nodes.map((n) => `${n.target.join(' ')}: ${n.failureSummary?.split('\n').slice(1).join(' ').trim()}`),
  }));
}

/** Fails with every violation of every screen, so that one run shows all there is to fix. */
function assertNone(found) {
  const text = found
    .map((v) => `[${v.screen}] ${v.id} (${v.impact}): ${v.help}\n${v.nodes.map((n) => `    ${n}`).join('\n')}`)
    .join('\n');
  assert.equal(found.length, 0, `axe violations:\n${text}`);
}

/**
 * Rows for the lists that start empty, through the API as a script would: a bulk job (a dry
 * run: it changes nothing), a sync job of one SIM, an API key. Returns the bulk job's id.
 */
async function listRows() {
  const sims = await api('/api/v1/sims?page_size=2');
  const job = await api('/api/v1/bulk-jobs', {
    method: 'POST',
    body: { action: 'add_tags', params: { tags: ['a11y'] }, iccids: sims.json.map((s) => s.iccid), dry_run: true },
  });
  assert.equal(job.status, 202, job.text);
  const sync = await api(`/api/v1/sims/${sims.json[0].iccid}/sync`, { method: 'POST' });
  assert.ok(sync.status < 300, sync.text);
  const key = await api('/api/v1/auth/api-keys', { method: 'POST', body: { name: `a11y ${Date.now()}`, role: 'viewer' } });
  assert.equal(key.status, 201, key.text);
  return job.json.id;
}

for (const [width, viewport] of WIDTHS) {
  test(`every screen has no WCAG 2.1 A/AA violation at ${width}`, async () => {
    const { pages: [page] } = await openPages(1, viewport);
    const found = [];
    await page.goto('/');
    const login = page.getByRole('dialog', { name: 'Log in' });
    await login.waitFor();
    found.push(...(await axe(page, 'login dialog')));
    await login.getByLabel('Username').fill('nobody');
    await login.getByLabel('Password').fill('wrong password');
    await login.getByRole('button', { name: 'Log in' }).click();
    await login.getByRole('alert').waitFor();
    found.push(...(await axe(page, 'login dialog, refused')));
    await logIn(page);
    const job = await listRows();

    await page.getByTestId('sims-total').waitFor();
    await page.getByRole('heading', { name: 'Usage' }).waitFor();
    await page.getByTestId('sync-age').waitFor().catch(() => undefined);
    found.push(...(await axe(page, 'fleet overview')));

    // The SIM table with a row selected, then the bulk confirmation.
    await page.goto('/sims');
    const first = page.locator('table.sims tbody tr').first();
    await first.waitFor();
    const iccid = (await first.locator('td a').first().textContent()).trim();
    await page.getByRole('checkbox', { name: `Select ${iccid}` }).check();
    await page.getByTestId('selection').waitFor();
    found.push(...(await axe(page, 'SIM table, a row selected')));
    await page.locator('details.columns summary').click();
    found.push(...(await axe(page, 'SIM table, the column chooser open')));
    await page.locator('details.columns summary').click();
    await page.getByRole('button', { name: 'Suspend…' }).click();
    await page.getByRole('dialog', { name: 'Suspend SIMs' }).waitFor();
    found.push(...(await axe(page, 'SIM table, bulk confirmation')));
    await page.keyboard.press('Escape');
    await page.getByRole('dialog', { name: 'Suspend SIMs' }).waitFor({ state: 'detached' });

    // The SIM detail: every section, the edit form, the top-up dialog, the composer with a
    // message too long, the timeline with a state and a comparison open.
    await page.goto(`/sims/${iccid}`);
    await page.getByTestId('sim-status').waitFor();
    await page.locator('ol.timeline li').first().waitFor();
    await page.getByTestId('quota-data-total').waitFor({ timeout: 30_000 }).catch(() => undefined);
    found.push(...(await axe(page, 'SIM detail')));
    await page.getByRole('button', { name: 'Edit label, tags, IMEI lock' }).click();
    await page.getByRole('form', { name: 'Edit the SIM' }).waitFor();
    await page.getByLabel('Message to the device').fill('a'.repeat(919));
    await page.locator('ol.timeline li[data-event-type="SimRegistered"]').getByRole('button', { name: /^State as of/ }).click();
    await page.getByTestId('state-as-of').waitFor();
    await page.locator('ol.timeline li').first().getByRole('button', { name: /^Compare with/ }).click();
    await page.getByRole('heading', { name: /^Changes from/ }).waitFor();
    await page.locator('ol.timeline li details summary').first().click();
    found.push(...(await axe(page, 'SIM detail, edit form, long SMS, state and diff')));
    await page.getByRole('button', { name: 'Top up…' }).click();
    await page.getByRole('dialog', { name: /Top up SIM/ }).waitFor();
    found.push(...(await axe(page, 'SIM detail, top-up dialog')));
    await page.keyboard.press('Escape');

    await page.goto('/sync');
    await page.getByRole('heading', { name: 'Jobs' }).waitFor();
    await page.getByTestId('sync-job').first().waitFor();
    await page.getByLabel('ICCID').fill('123');
    await page.getByRole('button', { name: 'Sync this SIM now' }).click();
    await page.locator('#sync-iccid-problem').waitFor();
    found.push(...(await axe(page, 'sync, an invalid ICCID')));

    await page.goto('/jobs');
    await page.locator('table.list tbody tr').first().waitFor();
    found.push(...(await axe(page, 'bulk jobs')));
    await page.goto(`/jobs/${job}`);
    await page.getByTestId('bulk-job-status').and(page.locator('[data-settled="true"]')).waitFor({ timeout: 30_000 });
    await page.locator('table.list tbody tr').first().waitFor();
    found.push(...(await axe(page, 'bulk job')));

    await page.goto('/import');
    await page.getByLabel('CSV file').setInputFiles({
      name: 'sims.csv',
      mimeType: 'text/csv',
      buffer: Buffer.from('iccid,imsi,msisdn,label,tags\n123,901405100000001,,,\n'),
    });
    await page.getByRole('button', { name: 'Check the file' }).click();
    await page.getByTestId('import-report').waitFor();
    found.push(...(await axe(page, 'import, a report')));

    await page.goto('/limits');
    await page.getByRole('form', { name: 'Change the monthly limits' }).waitFor();
    found.push(...(await axe(page, 'monthly limits')));

    await page.goto('/admin');
    await page.getByTestId('user-row').first().waitFor();
    await page.getByTestId('api-key-row').first().waitFor();
    found.push(...(await axe(page, 'admin')));
    await page.getByRole('button', { name: 'New user…' }).click();
    await page.getByRole('dialog', { name: 'New user' }).waitFor();
    found.push(...(await axe(page, 'admin, new user dialog')));
    await page.keyboard.press('Escape');

    assertNone(found);
  });
}

/** The element that has the focus: its tag, role, accessible name and label. */
const focused = (page) =>
  page.evaluate(() => {
    const e = document.activeElement;
    return { tag: e?.tagName.toLowerCase(), text: (e?.getAttribute('aria-label') ?? e?.textContent ?? '').trim(), visible: e?.matches(':focus-visible') };
  });

/** Presses Tab until `want` holds for the focused element (at most `limit` times). */
async function tabTo(page, want, limit = 80, key = 'Tab') {
  for (let i = 0; i < limit; i++) {
    await page.keyboard.press(key);
    const now = await focused(page);
    if (want(now)) return now;
  }
  throw new Error(`${key} never reached the element (last: ${JSON.stringify(await focused(page))})`);
}

test('the keyboard alone opens a SIM from the table and goes through a dialog, focus returning to its opener', async () => {
  const { pages: [page] } = await openPages();
  await page.goto('/sims');
  await logIn(page);
  const first = page.locator('table.sims tbody tr').first();
  await first.waitFor();
  const iccid = (await first.locator('td a').first().textContent()).trim();

  // The new screen has the focus (its <main>); back up through the header to the skip link,
  // which leads to the content again; then on to the first SIM's checkbox.
  assert.equal((await focused(page)).tag, 'main');
  const skip = await tabTo(page, (f) => f.text === 'Skip to content', 15, 'Shift+Tab');
  assert.ok(skip.visible, 'the skip link shows when focused');
  await page.keyboard.press('Enter');
  assert.equal((await focused(page)).tag, 'main');
  const box = await tabTo(page, (f) => f.text === `Select ${iccid}`);
  assert.ok(box.visible, 'the focused checkbox shows its focus');
  await page.keyboard.press('Space');
  await page.getByTestId('selection').getByText('1 selected').waitFor();

  // Shift+Tab back to the bulk actions, open the suspend confirmation, Tab inside, Escape.
  const opener = await tabTo(page, (f) => f.text === 'Suspend…', 40, 'Shift+Tab');
  assert.equal(opener.tag, 'button');
  await page.keyboard.press('Enter');
  const dialog = page.getByRole('dialog', { name: 'Suspend SIMs' });
  await dialog.waitFor();
  // Focus is in the dialog and stays there however far Tab goes.
  for (const [key, times] of [
    ['Tab', 12],
    ['Shift+Tab', 12],
  ]) {
    for (let i = 0; i < times; i++) {
      assert.ok(await dialog.evaluate((d) => d.contains(document.activeElement)), `focus left the dialog after ${i} × ${key}`);
      await page.keyboard.press(key);
    }
  }
  await page.keyboard.press('Escape');
  await dialog.waitFor({ state: 'detached' });
  assert.equal((await focused(page)).text, 'Suspend…', 'focus is back on the button that opened the dialog');
  assert.equal(await page.getByTestId('selection').getByText('1 selected').count(), 1, 'Escape sent nothing');

  // On to the SIM's link; Enter opens it and focus lands on the new screen.
  await tabTo(page, (f) => f.tag === 'a' && f.text === iccid);
  await page.keyboard.press('Enter');
  await page.getByRole('heading', { name: `SIM ${iccid}` }).waitFor();
  assert.equal((await focused(page)).tag, 'main');
  await page.getByTestId('sim-status').waitFor();

  // The top-up dialog by keyboard: opened with Enter, closed with its Cancel button.
  await eventually(async () => (await page.getByRole('button', { name: 'Top up…' }).count()) > 0, 60_000, 'the quotas');
  const topUp = await tabTo(page, (f) => f.text === 'Top up…', 120);
  assert.ok(topUp.visible);
  await page.keyboard.press('Enter');
  const topUpDialog = page.getByRole('dialog', { name: /Top up SIM/ });
  await topUpDialog.waitFor();
  await tabTo(page, (f) => f.text === 'Cancel', 10);
  await page.keyboard.press('Enter');
  await topUpDialog.waitFor({ state: 'detached' });
  assert.equal((await focused(page)).text, 'Top up…', 'focus is back on the top-up button');
});
