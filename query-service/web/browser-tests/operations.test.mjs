// Operations in Debian's chromium against the real services through the gateway: a bulk
// action from the SIM table confirmed by the provider (the simulator), API keys as an admin,
// and what a viewer may not do, in the page and against the API.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { adminToken, BASE, eventually, logIn, OUT, openPages, sentToken, useBrowser } from './harness.mjs';

useBrowser();

async function createUser(role) {
  const user = { username: `${role}-${Date.now()}`, password: `pw-${role}-browser-test-1`, role };
  const response = await fetch(`${BASE}/api/v1/users`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${await adminToken()}` },
    body: JSON.stringify(user),
  });
  assert.equal(response.status, 201, await response.clone().text());
  return user;
}

test('suspending a SIM from the table: a bulk job, then the status once the provider confirms', async () => {
  const { pages: [page] } = await openPages();
  await page.goto('/sims?status=active');
  await logIn(page);
  const first = page.locator('table.sims tbody tr').first();
  await first.waitFor();
  const iccid = (await first.locator('td a').first().textContent()).trim();

  await page.getByRole('checkbox', { name: `Select ${iccid}` }).check();
  await page.getByTestId('selection').getByText('1 selected').waitFor();
  await page.getByRole('button', { name: 'Suspend…' }).click();
  const dialog = page.getByRole('dialog', { name: 'Suspend SIMs' });
  await dialog.waitFor();
  assert.match(await dialog.getByTestId('bulk-confirmation').textContent(), /^Suspend 1 SIM: .*suspend it/);
  await dialog.getByRole('button', { name: 'Suspend 1 SIM' }).click();
  await dialog.waitFor({ state: 'detached' });

  // The job runs, then the connector reports the provider's answer.
  const status = page.getByTestId('bulk-job-status');
  await status.and(page.locator('[data-settled="true"]')).waitFor({ timeout: 60_000 });
  const summary = await page.getByTestId('bulk-job-summary').textContent();
  assert.match(summary, /1 of 1 run; 1 applied/);
  assert.match(summary, /provider: 1 confirmed/);

  // The table shows the SIM suspended, with nothing pending.
  await page.goto(`/sims?field=iccid&q=${iccid}`);
  const row = page.locator('table.sims tbody tr', { has: page.getByRole('link', { name: iccid }) });
  await eventually(
    async () => {
      const text = await row.textContent({ timeout: 5_000 });
      if (text.includes('suspended') && !text.includes('pending')) return true;
      await page.reload();
      return false;
    },
    30_000,
    'the SIM to show as suspended',
  );

  // The job is listed with its outcome per SIM.
  await page.goto('/jobs');
  await page.getByRole('heading', { name: 'Bulk jobs' }).waitFor();
  await page.locator('table.list tbody tr').first().getByRole('link').click();
  await page.getByRole('link', { name: iccid }).waitFor();
});

test('an admin creates an API key, sees it once, and revokes it', async () => {
  const { pages: [page] } = await openPages();
  await page.goto('/admin');
  await logIn(page);
  await page.getByRole('heading', { name: 'API keys' }).waitFor();
  const name = `browser test ${Date.now()}`;
  const form = page.getByRole('form', { name: 'New API key' });
  await form.getByLabel('Name').fill(name);
  await form.getByLabel('Role').selectOption('operator');
  const expires = new Date(Date.now() + 30 * 86_400_000).toISOString().slice(0, 10);
  await form.getByLabel('Expires (optional)').fill(expires);
  await form.getByRole('button', { name: 'Create key' }).click();

  const key = await page.getByLabel('The new API key').inputValue();
  assert.ok(key.length >= 32, `a key: ${key}`);
  const row = page.locator(`[data-testid="api-key-row"][data-name="${name}"]`);
  await row.waitFor();
  const prefix = (await row.locator('td.mono').textContent()).trim();
  assert.ok(key.startsWith(prefix), `${key} starts with ${prefix}`);
  assert.equal(await row.getByTestId('api-key-state').textContent(), 'active');
  assert.match(await row.textContent(), /operator/);
  // The key is shown once: the list has its prefix only.
  assert.ok(!(await page.locator('table.list').first().textContent()).includes(key));

  // Listed by prefix.
  await page.getByLabel('Find by prefix').fill(prefix);
  await eventually(async () => (await page.getByTestId('api-key-row').count()) === 1, 5_000, 'only the key with that prefix');

  // The key works, until it is revoked.
  const withKey = () => fetch(`${BASE}/api/v1/sims?page_size=1`, { headers: { 'X-API-Key': key } });
  assert.equal((await withKey()).status, 200);
  await page.getByRole('button', { name: 'Done' }).click();
  assert.equal(await page.getByLabel('The new API key').count(), 0);
  await row.getByRole('button', { name: `Revoke ${name}` }).click();
  const confirm = page.getByRole('dialog', { name: 'Revoke API key' });
  await confirm.getByRole('button', { name: 'Revoke key' }).click();
  await confirm.waitFor({ state: 'detached' });
  await eventually(async () => (await row.getByTestId('api-key-state').textContent()) === 'revoked', 10_000, 'the key to show as revoked');
  assert.equal((await withKey()).status, 401);
});

test('a viewer sees no command buttons, and a command forged with their session answers 403', async () => {
  const viewer = await createUser('viewer');
  const { pages: [page] } = await openPages();
  const sent = sentToken(page);
  await page.goto('/sims');
  await logIn(page, viewer);
  const first = page.locator('table.sims tbody tr').first();
  await first.waitFor();
  const iccid = (await first.locator('td a').first().textContent()).trim();

  await page.getByRole('button', { name: 'Export CSV' }).waitFor();
  for (const action of ['Activate…', 'Suspend…', 'Top up…', 'Tag…', 'Send SMS…']) {
    assert.equal(await page.getByRole('button', { name: action }).count(), 0, `no ${action} button`);
  }
  const nav = page.getByRole('navigation', { name: 'Main' });
  for (const hidden of ['Admin', 'Bulk jobs', 'Import']) {
    assert.equal(await nav.getByRole('link', { name: hidden }).count(), 0, `no ${hidden} link`);
  }
  await nav.getByRole('link', { name: 'Sync' }).click();
  await page.getByRole('heading', { name: 'Jobs' }).waitFor();
  assert.equal(await page.getByRole('button', { name: /sync/i }).count(), 0, 'no sync button');
  // A reload: the refresh cookie signs the viewer in again.
  await page.goto('/admin');
  await page.getByText('Only an admin can manage users and API keys.').waitFor();

  // The API decides: commands sent from the page with the viewer's token are refused.
  const token = sent();
  assert.ok(token, 'the page sent the viewer token');
  const forged = await page.evaluate(
    async ({ token, iccid }) => {
      const send = async (path, body) => {
        const response = await fetch(path, {
          method: 'POST',
          headers: { Authorization: `Bearer ${token}`, 'Content-Type': 'application/json' },
          body: JSON.stringify(body),
        });
        return { status: response.status, code: (await response.json()).error?.code };
      };
      return [
        await send(`/api/v1/sims/${iccid}/suspend`, {}),
        await send('/api/v1/bulk-jobs', { action: 'suspend', iccids: [iccid] }),
        await send('/api/v1/auth/api-keys', { name: 'forged' }),
      ];
    },
    { token, iccid },
  );
  assert.deepEqual(forged, [
    { status: 403, code: 'FORBIDDEN' },
    { status: 403, code: 'FORBIDDEN' },
    { status: 403, code: 'FORBIDDEN' },
  ]);
});

test('the operations screens at phone width', async () => {
  const { pages: [page] } = await openPages(1, { width: 375, height: 800 });
  await page.goto('/sync');
  await logIn(page);
  for (const [path, heading] of [
    ['/sync', 'Sync'],
    ['/jobs', 'Bulk jobs'],
    ['/import', 'Import SIMs'],
    ['/admin', 'Admin'],
  ]) {
    await page.goto(path);
    await page.getByRole('heading', { name: heading, level: 1 }).waitFor();
    await page.locator('table tbody tr').first().waitFor({ timeout: 5_000 }).catch(() => undefined);
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    assert.ok(overflow <= 0, `${path} is ${overflow} px wider than the screen`);
  }
});

test('a CSV import: the report of a bad file, then the good file as one job', async () => {
  const { pages: [page] } = await openPages();
  await page.goto('/import');
  await logIn(page);
  const stamp = String(Date.now()).slice(-9);
  const rows = [0, 1].map((n) => `8999${stamp}${String(n).padStart(6, '0')},90140${stamp}${n},,import ${n},imported`);
  const file = (lines) => ({ name: 'sims.csv', mimeType: 'text/csv', buffer: Buffer.from(['iccid,imsi,msisdn,label,tags', ...lines].join('\n')) });

  await page.getByLabel('CSV file').setInputFiles(file([...rows, '123,901405100000001,,,']));
  await page.getByTestId('import-preview').getByText('3 SIMs').waitFor();
  await page.getByRole('button', { name: 'Check the file' }).click();
  const report = page.getByTestId('import-report');
  await report.getByText('1 of 3 rows are invalid').waitFor();
  assert.match(await report.locator('tbody tr').first().textContent(), /^4iccid/);
  assert.ok(await page.getByRole('button', { name: /^Import/ }).isDisabled());

  await page.getByLabel('CSV file').setInputFiles(file(rows));
  await page.getByRole('button', { name: 'Check the file' }).click();
  await page.getByTestId('import-report').getByText('All 2 rows are valid.').waitFor();
  await page.getByRole('button', { name: 'Import 2 SIMs' }).click();
  await page.getByTestId('bulk-job-status').and(page.locator('[data-settled="true"]')).waitFor({ timeout: 30_000 });
  assert.match(await page.getByTestId('bulk-job-summary').textContent(), /2 of 2 run; 2 applied/);
});

test('changing the monthly data limit at 1NCE from the limits screen', async () => {
  const { pages: [page] } = await openPages();
  await page.goto('/limits');
  await logIn(page);
  await page.getByRole('heading', { name: 'Monthly limits' }).waitFor();
  // The connector reads 1NCE's limits at its start.
  const now = page.getByTestId('limit-now-data');
  await eventually(async () => (await page.reload(), /\(id \d+\)$/.test(await now.textContent({ timeout: 5_000 }))), 60_000, '1NCE’s data limit');
  const before = Number((await now.textContent()).match(/\(id (\d+)\)$/)[1]);
  const select = page.getByLabel('Data', { exact: true });
  const ids = (await select.locator('option').evaluateAll((options) => options.map((o) => o.value))).filter(Boolean).map(Number);
  const other = ids.find((id) => id !== before);
  assert.ok(other !== undefined, `1NCE offers another data limit than ${before}: ${ids}`);

  await select.selectOption(String(other));
  await page.getByRole('button', { name: 'Ask 1NCE to change them' }).click();
  await eventually(async () => (await page.getByTestId('limits-last-change').textContent()).startsWith('done'), 60_000, 'the change to be done at 1NCE');
  // The connector reads 1NCE's limits again after the change.
  await eventually(async () => (await page.reload(), (await now.textContent({ timeout: 5_000 })).endsWith(`(id ${other})`)), 30_000, `1NCE to show data limit ${other}`);
  await page.screenshot({ path: `${OUT}/limits.png`, fullPage: true });
});
