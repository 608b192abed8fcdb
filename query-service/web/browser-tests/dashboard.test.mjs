// The dashboard in Debian's chromium against the real services through the gateway, with the
// simulator as the provider (deploy/local/browser-test.sh starts them).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { eventually, logIn, openPages, SIMS, useBrowser } from './harness.mjs';

useBrowser();

test('the bootstrap admin logs in and sees the fleet overview with the simulator SIMs', async () => {
  const { pages: [page] } = await openPages();
  await page.goto('/');
  await logIn(page);
  await page.getByRole('heading', { name: 'Fleet', level: 1 }).waitFor();
  // The connector registers the provider's SIMs on its first sweeps; the summary refreshes.
  await eventually(
    async () => {
      await page.reload();
      const total = await page.getByTestId('sims-total').textContent({ timeout: 5_000 });
      return Number(total?.replace(/,/g, '')) === SIMS;
    },
    90_000,
    `the fleet overview to count ${SIMS} SIMs`,
  );
  await page.getByRole('heading', { name: 'Usage' }).waitFor();
});

test('the time slider shows the fleet as recorded at an earlier instant, and "Now" the live fleet', async () => {
  const { pages: [page] } = await openPages();
  await page.goto('/');
  await logIn(page);
  const slider = page.getByRole('slider', { name: "Instant in the fleet's history" });
  await slider.waitFor();
  await eventually(async () => Number((await page.getByTestId('sims-total').textContent())?.replace(/,/g, '')) === SIMS, 30_000, 'the live total');
  await page.getByTestId('quota-data-warning').waitFor();

  // Home: the first recorded event, when the fleet had only its first SIM.
  await slider.focus();
  await page.keyboard.press('Home');
  await eventually(async () => (await page.getByTestId('as-of-mode').textContent())?.startsWith('As recorded at'), 5_000, 'the past mode');
  await eventually(async () => {
    const total = Number((await page.getByTestId('sims-total').textContent())?.replace(/,/g, ''));
    return total >= 1 && total < SIMS;
  }, 10_000, 'the summary as of the first event');
  await page.getByText('Shown for now only').waitFor();

  await page.getByRole('button', { name: 'Now' }).click();
  await eventually(async () => (await page.getByTestId('as-of-mode').textContent()) === 'Now (live)', 5_000, 'the live mode');
  await eventually(async () => Number((await page.getByTestId('sims-total').textContent())?.replace(/,/g, '')) === SIMS, 10_000, 'the live total again');
  await page.getByTestId('sync-age').waitFor();
});

test('finds a SIM by ICCID prefix in the table and opens it', async () => {
  const { pages: [page] } = await openPages();
  await page.goto('/sims');
  await logIn(page);
  const links = page.locator('table.sims tbody td a');
  await links.first().waitFor();
  const iccid = (await links.nth(3).textContent()).trim();
  assert.match(iccid, /^\d{19}$/);

  await page.getByLabel('Search by').selectOption('iccid');
  await page.getByRole('searchbox', { name: 'Search' }).fill(iccid.slice(0, 17));
  await eventually(async () => {
    const shown = await links.allTextContents();
    return shown.length > 0 && shown.length <= 100 && shown.every((text) => text.startsWith(iccid.slice(0, 17))) && shown.includes(iccid);
  }, 10_000, 'the table to show only SIMs with that prefix');
  assert.match(page.url(), new RegExp(`q=${iccid.slice(0, 17)}`));

  await page.getByRole('link', { name: iccid }).click();
  await page.getByRole('heading', { name: `SIM ${iccid}` }).waitFor();
  await page.getByRole('heading', { name: 'Identity' }).waitFor();
  assert.ok(['inactive', 'active', 'suspended', 'terminated'].includes(await page.getByTestId('sim-status').textContent()));
});

test('a session survives a reload, and logging out ends it in every tab', async () => {
  const { pages: [first, second] } = await openPages(2);
  await first.goto('/');
  await logIn(first);
  await first.getByRole('button', { name: 'Log out' }).waitFor();

  // Reload: the access token (memory only) is gone, the refresh cookie brings it back.
  await first.reload();
  await first.getByRole('button', { name: 'Log out' }).waitFor();
  assert.equal(await first.getByRole('dialog', { name: 'Log in' }).count(), 0);

  // A second tab of the same browser is signed in by the same cookie, without a form.
  await second.goto('/sims');
  await second.locator('table.sims tbody tr').first().waitFor();
  assert.equal(await second.getByRole('dialog', { name: 'Log in' }).count(), 0);

  await first.getByRole('button', { name: 'Log out' }).click();
  await first.getByRole('dialog', { name: 'Log in' }).waitFor();
  // The other tab hears of it at once (BroadcastChannel) ...
  await second.getByRole('dialog', { name: 'Log in' }).waitFor();
  // ... and the login is over on the server too: a reload finds no session.
  await second.reload();
  await second.getByRole('dialog', { name: 'Log in' }).waitFor();
});

test('the first load of the SIM table, measured', async () => {
  const { context, pages: [page] } = await openPages();
  await page.goto('/');
  await logIn(page);
  await page.getByRole('button', { name: 'Log out' }).waitFor();
  // A cold load of the table's address: page, scripts, the cookie refresh and the first page.
  const fresh = await context.newPage();
  await fresh.goto('/sims');
  await fresh.locator('table.sims tbody tr').first().waitFor();
  const ms = await fresh.evaluate(() => performance.now());
  const navigation = await fresh.evaluate(() => JSON.parse(JSON.stringify(performance.getEntriesByType('navigation')[0])));
  console.log(
    `SIM table first load: ${ms.toFixed(0)} ms to the first rows (DOMContentLoaded ${navigation.domContentLoadedEventEnd.toFixed(0)} ms, ${SIMS} SIMs in the read model)`,
  );
  await fresh.close();
  assert.ok(ms < 5_000, `the table took ${ms} ms`);
});

test('the SIM table at phone width', async () => {
  const { pages: [page] } = await openPages(1, { width: 375, height: 800 });
  await page.goto('/sims');
  await logIn(page);
  await page.locator('table.sims tbody tr').first().waitFor();
  // Nothing wider than the screen: the rows become cards.
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  assert.ok(overflow <= 0, `the page is ${overflow} px wider than the screen`);
});
