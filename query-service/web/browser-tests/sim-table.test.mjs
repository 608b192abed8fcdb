// The SIM table's filters and fleet-wide actions in Debian's chromium against the real services
// through the gateway: the quota-state filter, the CSV export of the current filter, a bulk job
// over "every SIM matching" (the filter frozen at submission), and a bulk job cancelled while it
// runs (deploy/local/browser-test.sh slows the bulk worker down with BULK_ITEMS_PER_SEC so the
// cancel lands first).
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { adminToken, api, eventually, logIn, openPages, useBrowser } from './harness.mjs';

useBrowser();

/** The total of the list as the table's status line says it ("1–25 of 37"; 0 when none). */
async function shownTotal(page) {
  const text = await page.getByTestId('list-status').textContent();
  if (text === 'No SIM matches.') return 0;
  const match = /of (?:about )?([\d,]+)$/.exec(text);
  return match ? Number(match[1].replace(/,/g, '')) : NaN;
}

/** The API's count of `GET /sims` with these parameters (X-Total-Count). */
async function apiTotal(token, params) {
  const answer = await api(`/api/v1/sims?page_size=1&${params}`, { token });
  assert.equal(answer.status, 200, answer.text);
  return Number(answer.headers.get('X-Total-Count'));
}

/** RFC 4180 CSV (quoted fields, doubled quotes, CRLF) into rows of fields. */
function parseCsv(text) {
  const rows = [];
  let row = [];
  let field = '';
  let quoted = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (quoted) {
      if (c === '"' && text[i + 1] === '"') (field += '"'), i++;
      else if (c === '"') quoted = false;
      else field += c;
    } else if (c === '"') quoted = true;
    else if (c === ',') row.push(field), (field = '');
    else if (c === '\n') row.push(field.replace(/\r$/, '')), rows.push(row), (row = []), (field = '');
    else field += c;
  }
  if (field || row.length) row.push(field), rows.push(row);
  return rows;
}

/** A signed-in admin's page showing the SIM table's first rows. */
async function openTable() {
  const { pages: [page] } = await openPages();
  await page.goto('/sims');
  await logIn(page);
  await page.locator('table.sims tbody tr').first().waitFor();
  return page;
}

/** The ICCIDs of the table's rows, in order. */
const shownIccids = async (page) => (await page.locator('table.sims tbody td a').allTextContents()).map((t) => t.trim());

test('the quota-state filter shows the SIMs whose quota is in the chosen states, as the API counts them', async () => {
  const token = await adminToken();
  // The connector reports quotas on its sweeps.
  await eventually(async () => (await apiTotal(token, 'quota_state=ok,warning,exhausted')) > 0, 60_000, 'quotas to be reported');
  const page = await openTable();
  const all = await shownTotal(page);
  const quota = page.getByRole('group', { name: 'Quota' });

  const picked = [];
  for (const [state, label] of [
    ['ok', 'under 80 %'],
    ['warning', '80 % or more'],
    ['exhausted', 'used up'],
  ]) {
    await quota.getByLabel(label, { exact: true }).check();
    picked.push(state);
    const param = picked.join(',');
    // Usage moves on while the test runs: the table and the API agree once both are read anew.
    await eventually(
      async () => {
        if (!page.url().includes(`quota=${encodeURIComponent(param)}`) && !page.url().includes(`quota=${param}`)) return false;
        const [ui, expected] = [await shownTotal(page), await apiTotal(token, `quota_state=${param}`)];
        const listed = await api(`/api/v1/sims?page_size=100&quota_state=${param}`, { token });
        const allowed = new Set(listed.json.map((s) => s.iccid));
        const shown = await shownIccids(page);
        if (ui === expected && shown.length === Math.min(expected, 50) && shown.every((iccid) => allowed.has(iccid))) return true;
        // A SIM crossed a threshold between the two reads: the table reads again (the filter is
        // in the address); what was seen is said when the wait times out.
        await page.reload();
        await page.locator('table.sims tbody tr').first().waitFor({ timeout: 5_000 }).catch(() => undefined);
        throw new Error(`table ${ui} (${shown.length} rows, ${shown.filter((i) => !allowed.has(i)).length} not the API's), API ${expected}, ${page.url()}`);
      },
      15_000,
      `the table to show the API's SIMs with quota_state=${param}`,
    );
    console.log(`quota_state=${param}: ${await shownTotal(page)} of ${all} SIMs`);
  }
  // Every SIM with quotas is in one of the three states; a SIM without quotas in none.
  assert.ok((await shownTotal(page)) <= all);
  await quota.getByLabel('under 80 %', { exact: true }).uncheck();
  await eventually(async () => (await shownTotal(page)) === (await apiTotal(token, 'quota_state=warning,exhausted')), 15_000, 'warning and exhausted only');
});

test('the CSV export holds exactly the SIMs of the current filter', async () => {
  const token = await adminToken();
  const page = await openTable();
  const iccid = (await shownIccids(page))[0];
  const prefix = iccid.slice(0, 17);
  // An ICCID prefix (17 digits: a few SIMs, the simulator numbers them in a row) and three of
  // the four statuses: a filter the simulator cannot change under the test (it never
  // terminates a SIM).
  await page.getByLabel('Search by').selectOption('iccid');
  await page.getByRole('searchbox', { name: 'Search' }).fill(prefix);
  const status = page.getByRole('group', { name: 'Status' });
  for (const s of ['inactive', 'active', 'suspended']) await status.getByLabel(s, { exact: true }).check();
  await eventually(async () => page.url().includes(`q=${prefix}`) && page.url().includes('status='), 5_000, 'the filter in the address');
  await eventually(async () => {
    const shown = await shownIccids(page);
    return shown.length > 0 && shown.every((i) => i.startsWith(prefix));
  }, 10_000, 'the filtered rows');

  const [download] = await Promise.all([page.waitForEvent('download'), page.getByRole('button', { name: 'Export CSV' }).click()]);
  assert.equal(download.suggestedFilename(), 'sims.csv');
  const rows = parseCsv(readFileSync(await download.path(), 'utf8'));
  const [header, ...body] = rows;
  assert.deepEqual(header.slice(0, 6), ['iccid', 'imsi', 'msisdn', 'label', 'tags', 'status']);
  for (const column of ['data_remaining', 'data_quota_state', 'sms_remaining', 'registered_at']) assert.ok(header.includes(column), column);
  assert.ok(body.every((row) => row.length === header.length), 'every row has every column');

  const expected = await api(`/api/v1/sims?page_size=100&iccid=${prefix}&status=inactive,active,suspended`, { token });
  assert.deepEqual(
    body.map((row) => row[0]),
    expected.json.map((s) => s.iccid),
    'the file lists the SIMs of the filter, in the list order',
  );
  assert.ok(body.length > 0 && body.length <= 100);
  for (const row of body) {
    assert.ok(row[0].startsWith(prefix));
    assert.ok(['inactive', 'active', 'suspended'].includes(row[5]), row[5]);
  }
  console.log(`export: ${body.length} rows for iccid=${prefix}…`);
});

test('a bulk job over every SIM matching the filter: the confirmation counts X-Total-Count, the job takes that many', async () => {
  const token = await adminToken();
  const page = await openTable();
  // The last SIM's first 17 digits: a few SIMs (the simulator numbers them in a row).
  const last = (await api('/api/v1/sims?page_size=1&sort=-iccid', { token })).json[0].iccid;
  const prefix = last.slice(0, 17);
  await page.goto(`/sims?field=iccid&q=${prefix}`);
  await eventually(async () => {
    const shown = await shownIccids(page);
    return shown.length > 0 && shown.every((i) => i.startsWith(prefix));
  }, 10_000, 'the filtered rows');
  const total = await apiTotal(token, `iccid=${prefix}`);
  assert.equal(await shownTotal(page), total);

  // Nothing selected: the dialog offers every matching SIM only.
  await page.getByRole('button', { name: 'Tag…' }).click();
  const dialog = page.getByRole('dialog', { name: 'Tag SIMs' });
  await dialog.waitFor();
  const every = dialog.getByRole('radio', { name: /^Every SIM matching/ });
  assert.ok(await every.isChecked());
  assert.ok(await dialog.getByRole('radio', { name: /selected$/ }).isDisabled());
  assert.match(await every.evaluate((e) => e.parentElement.textContent), new RegExp(`\\(${total}\\)$`));
  const tag = `every-${Date.now()}`;
  await dialog.getByLabel('Tags to add (comma-separated)').fill(tag);
  assert.match(await dialog.getByTestId('bulk-confirmation').textContent(), new RegExp(`^Tag ${total} SIMs?: .*adds the tags: ${tag}\\.`));
  await dialog.getByRole('button', { name: `Tag ${total} SIM${total === 1 ? '' : 's'}` }).click();
  await dialog.waitFor({ state: 'detached' });

  const status = page.getByTestId('bulk-job-status');
  await status.and(page.locator('[data-settled="true"]')).waitFor({ timeout: 60_000 });
  assert.match(await page.getByTestId('bulk-job-summary').textContent(), new RegExp(`^${total} of ${total} run; ${total} applied`));
  const id = (await status.getByRole('link', { name: 'Job details' }).getAttribute('href')).split('/').pop();
  const job = await api(`/api/v1/bulk-jobs/${id}`, { token });
  assert.equal(job.json.total, total);
  assert.equal(job.json.target.filter?.iccid, prefix, `the filter is kept as the target: ${JSON.stringify(job.json.target)}`);
  // The job's SIMs are the filter's as submitted (the query API follows the record).
  await eventually(async () => (await apiTotal(token, `tag=${tag}`)) === total, 10_000, `${total} SIMs tagged ${tag}`);
});

test('cancelling a running bulk job: it ends cancelled and the items not started are not applied', async () => {
  const token = await adminToken();
  const page = await openTable();
  const total = await shownTotal(page);
  assert.ok(total >= 20, `enough SIMs for the job to run a while (${total})`);

  await page.getByRole('button', { name: 'Tag…' }).click();
  const dialog = page.getByRole('dialog', { name: 'Tag SIMs' });
  const tag = `cancel-${Date.now()}`;
  await dialog.getByLabel('Tags to add (comma-separated)').fill(tag);
  await dialog.getByRole('button', { name: /^Tag \d+ SIMs$/ }).click();
  await dialog.waitFor({ state: 'detached' });
  await page.getByTestId('bulk-job-status').getByRole('link', { name: 'Job details' }).click();
  await page.getByRole('heading', { name: 'Bulk job', level: 1 }).waitFor();
  await page.getByRole('button', { name: 'Cancel what has not started' }).click();

  const status = page.getByTestId('bulk-job-status');
  await status.and(page.locator('[data-settled="true"]')).waitFor({ timeout: 30_000 });
  assert.equal(await status.getAttribute('data-status'), 'cancelled');
  assert.equal(await page.getByRole('button', { name: 'Cancel what has not started' }).count(), 0);
  const summary = await page.getByTestId('bulk-job-summary').textContent();
  assert.match(summary, /\d+ cancelled/);

  const id = page.url().split('/').pop();
  // An item a worker had started when the cancel came finishes; the read model follows.
  let job;
  await eventually(
    async () => {
      job = (await api(`/api/v1/bulk-jobs/${id}`, { token })).json;
      return job.done + job.cancelled === job.total && (await apiTotal(token, `tag=${tag}`)) === job.applied;
    },
    15_000,
    'every item run or cancelled, and only the applied ones tagged',
  );
  console.log(`cancelled job: ${job.applied} applied, ${job.cancelled} cancelled of ${job.total}`);
  assert.equal(job.status, 'cancelled');
  assert.ok(job.cancelled > 0, 'the cancel landed before the last item');
  const cancelled = await api(`/api/v1/bulk-jobs/${id}/items?outcome=cancelled&page_size=1000`, { token });
  assert.equal(cancelled.json.length, job.cancelled);
  const tagged = await api(`/api/v1/sims?page_size=100&tag=${tag}`, { token });
  const taggedIccids = new Set(tagged.json.map((s) => s.iccid));
  assert.ok(cancelled.json.every((item) => !taggedIccids.has(item.iccid)), 'no cancelled item was applied');

  // The page lists the cancelled items too.
  await page.getByRole('combobox', { name: /^Outcome/ }).selectOption('cancelled');
  await eventually(async () => (await page.locator('table.list tbody tr').count()) === Math.min(job.cancelled, 100), 10_000, 'the cancelled items');
});
