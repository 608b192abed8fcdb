// The SIM detail screen in Debian's chromium against the real services through the gateway,
// with the simulator as the provider (deploy/local/browser-test.sh starts them): top-up, SMS,
// the audit timeline's state as of the registration, and the phone width.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { api, eventually, logIn, openPages, OUT, useBrowser } from './harness.mjs';

useBrowser();

/** Opens the `nth` SIM of the table (each test its own SIM) and waits for its detail page. */
async function openSim(page, nth) {
  await page.goto('/sims');
  await logIn(page);
  const links = page.locator('table.sims tbody td a');
  await links.nth(nth).waitFor();
  const iccid = (await links.nth(nth).textContent()).trim();
  await page.goto(`/sims/${iccid}`);
  await page.getByRole('heading', { name: `SIM ${iccid}` }).waitFor();
  await page.getByTestId('sim-status').waitFor();
  return iccid;
}

test('tops up a SIM and sees the quota change', async () => {
  const { pages: [page] } = await openPages();
  await openSim(page, 5);
  // The connector reports the quotas on its sweeps.
  const total = page.getByTestId('quota-data-total');
  await eventually(async () => (await page.reload(), (await total.textContent({ timeout: 5_000 })) !== null), 60_000, 'the data quota');
  const before = { total: await total.textContent(), remaining: await page.getByTestId('quota-data-remaining').textContent() };

  await page.getByRole('button', { name: 'Top up…' }).click();
  const dialog = page.getByRole('dialog', { name: /Top up SIM/ });
  await dialog.getByLabel('Data').check();
  await dialog.getByRole('button', { name: 'Top up Data' }).click();
  // The dialog waits for the read model and then for 1NCE's answer, and shows the new quota.
  const result = dialog.getByTestId('topup-result');
  await result.waitFor({ timeout: 60_000 });
  assert.match(await result.textContent(), /^Done: the Data quota is now/);
  await dialog.getByRole('button', { name: 'Close' }).click();

  const after = { total: await total.textContent(), remaining: await page.getByTestId('quota-data-remaining').textContent() };
  assert.notDeepEqual(after, before, `the data quota still shows ${JSON.stringify(before)}`);
  // The requests card follows the history: the newest request is this top-up, completed.
  const newest = page.locator('ul.requests li').first();
  await eventually(
    async () => (await newest.textContent()).startsWith('Top-up (data quota)') && (await newest.getByTestId('request-outcome').textContent()) === 'completed',
    15_000,
    'the top-up to show as completed among the requests',
  );
});

test('sends an SMS and sees it in the thread', async () => {
  const { pages: [page] } = await openPages();
  await openSim(page, 6);
  const text = `Browser test ${Date.now()}: hello {device}`;
  const box = page.getByLabel('Message to the device');
  await box.fill(text);
  // Braces are in GSM-7's extension table: two septets each.
  assert.match(await page.getByTestId('sms-count').textContent(), new RegExp(`^${text.length + 2} GSM-7 septets · 1 part`));
  await box.fill('ж'.repeat(71));
  assert.match(await page.getByTestId('sms-count').textContent(), /^71 UCS-2 code units · 2 parts/);
  await box.fill('a'.repeat(919));
  assert.match(await page.getByTestId('sms-count').textContent(), /^Too long: 919 GSM-7 septets need 7 parts; at most 918/);
  assert.equal(await page.getByRole('button', { name: 'Send SMS' }).isDisabled(), true);

  await box.fill(text);
  await page.getByRole('button', { name: 'Send SMS' }).click();
  const message = page.getByTestId('sms-thread').locator('li', { hasText: text });
  await message.waitFor();
  // The thread can show the message (a poll of the page) a moment before the command's answer
  // settles and empties the composer.
  await eventually(async () => (await box.inputValue()) === '', 10_000, 'the composer to be emptied once the message is recorded');
  // The connector hands it to the simulator, which reports its delivery.
  await eventually(
    async () => ['submitted to 1NCE', 'delivered'].includes(await message.getByTestId('sms-status').textContent()),
    60_000,
    'the message to be submitted',
  );
});

test('opens the timeline and views the state as of the registration', async () => {
  const { pages: [page] } = await openPages();
  const iccid = await openSim(page, 7);
  const registered = page.locator('ol.timeline li[data-event-type="SimRegistered"]');
  await registered.waitFor();
  await registered.getByRole('button', { name: /^State as of this event \(SimRegistered/ }).click();
  const state = page.getByTestId('state-as-of');
  await state.waitFor();
  assert.equal(await state.locator('tr[data-field="iccid"] td').textContent(), iccid);
  assert.equal(await state.locator('tr[data-field="version"] td').textContent(), '1');
  // Focus moved to what the click shows.
  assert.match(await page.evaluate(() => document.activeElement?.textContent ?? ''), /^State as of SimRegistered/);

  // Compared with the newest event: what changed since the registration.
  await page.locator('ol.timeline li').first().getByRole('button', { name: /^Compare with/ }).click();
  const heading = page.getByRole('heading', { name: /^Changes from SimRegistered/ });
  await heading.waitFor();
  const diff = page.getByTestId('state-diff');
  if (await diff.count()) assert.ok((await diff.locator('tbody tr').count()) > 0);
});

test('saving an edit made on a stale version shows the API\'s refusal with its request id', async () => {
  const { pages: [page] } = await openPages();
  const iccid = await openSim(page, 9);
  await page.getByRole('button', { name: 'Edit label, tags, IMEI lock' }).click();
  const form = page.getByRole('form', { name: 'Edit the SIM' });
  const label = form.getByLabel('Label');
  await label.fill(`mine ${Date.now()}`);

  // Someone else changes the SIM meanwhile (through the API, as another client would).
  const theirs = `theirs ${Date.now()}`;
  const changed = await api(`/api/v1/sims/${iccid}`, { method: 'PATCH', body: { label: theirs } });
  assert.ok(changed.status < 300, changed.text);

  const [response] = await Promise.all([
    page.waitForResponse((r) => r.request().method() === 'PATCH' && r.url().endsWith(`/api/v1/sims/${iccid}`)),
    form.getByRole('button', { name: 'Save' }).click(),
  ]);
  assert.equal(response.status(), 412);
  const answer = await response.json();
  assert.equal(answer.error.code, 'VERSION_MISMATCH');
  const notice = form.getByRole('alert');
  await notice.waitFor();
  const text = await notice.textContent();
  assert.ok(text.startsWith('Could not save the changes.'), text);
  assert.ok(text.includes(answer.error.message), `the API's message in: ${text}`);
  assert.ok(answer.error.request_id && text.includes(`Request id: ${answer.error.request_id}`), `the request id in: ${text}`);
  await form.getByText('Someone changed this SIM after you opened it.').waitFor();
  await form.screenshot({ path: `${OUT}/edit-refused-on-a-stale-version.png` });

  // Starting again takes the latest state, and saving it works.
  await form.getByRole('button', { name: 'Start again from the latest' }).click();
  await eventually(async () => (await label.inputValue()) === theirs, 10_000, 'the form to hold the latest label');
  const mine = `mine again ${Date.now()}`;
  await label.fill(mine);
  await form.getByRole('button', { name: 'Save' }).click();
  await form.waitFor({ state: 'detached' });
  await eventually(async () => (await api(`/api/v1/sims/${iccid}`)).json.label === mine, 10_000, 'the saved label');
  assert.equal(await page.getByRole('form', { name: 'Edit the SIM' }).count(), 0);
});

test('the SIM detail at phone width', async () => {
  const { pages: [page] } = await openPages(1, { width: 375, height: 800 });
  await openSim(page, 8);
  await page.getByRole('heading', { name: 'Audit timeline' }).waitFor();
  await page.locator('ol.timeline li').first().waitFor();
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  assert.ok(overflow <= 0, `the page is ${overflow} px wider than the screen`);
});

test('shows the connectivity history the provider reported, newest first', async () => {
  // The simulator streams PDP events for its SIMs; take a SIM the connector has recorded
  // connectivity changes for, as the API shows them.
  const list = await api(`/api/v1/sims?page_size=100`);
  assert.equal(list.status, 200, list.text);
  let iccid = null;
  let changes = [];
  await eventually(
    async () => {
      for (const sim of list.json) {
        const history = await api(`/api/v1/sims/${sim.iccid}/connectivity?limit=1000`);
        assert.equal(history.status, 200, history.text);
        if (history.json.changes.length >= 2) {
          iccid = sim.iccid;
          changes = history.json.changes;
          return true;
        }
      }
      return false;
    },
    120_000,
    'a SIM with two connectivity changes recorded',
  );

  const { pages: [page] } = await openPages();
  await page.goto(`/sims/${iccid}`);
  await logIn(page);
  await page.getByRole('heading', { name: 'Connectivity history' }).waitFor();
  const rows = page.getByTestId('connectivity-history').locator('tbody tr');
  await rows.first().waitFor();
  // More may have arrived since the API was read; the screen shows at least those, newest first.
  const shown = await rows.evaluateAll((trs) => trs.map((tr) => Number(tr.dataset.position)));
  assert.ok(shown.length >= Math.min(changes.length, 20), `${shown.length} rows for ${changes.length} changes`);
  assert.deepEqual(shown, [...shown].sort((a, b) => b - a), 'newest first');
  const oldestRead = changes[0].position;
  const newestRead = changes[changes.length - 1].position;
  assert.ok(shown[0] >= newestRead, `the newest row ${shown[0]} is older than the API's newest ${newestRead}`);
  if (changes.length <= 20) assert.ok(shown.includes(oldestRead), 'the oldest change is listed');
  // The API's newest change is on the screen, as the API has it.
  const latest = changes[changes.length - 1];
  const cells = await rows.and(page.locator(`tr[data-position="${latest.position}"]`)).locator('td').allTextContents();
  assert.deepEqual(cells.slice(1), [latest.network ?? '—', latest.country ?? '—', latest.rat ?? '—', latest.ip_address ?? '—', latest.actor ?? '—']);
  await page.getByTestId('connectivity-count').waitFor();
  assert.match(await page.getByTestId('connectivity-count').textContent(), /^\d+ changes?/);
  await page.getByRole('heading', { name: 'Connectivity history' }).locator('..').screenshot({ path: `${OUT}/connectivity-history.png` });
});

test('switches auto top-up on and resets the connectivity at 1NCE, and shows the outcomes', async () => {
  const list = await api(`/api/v1/sims?page_size=100`);
  assert.equal(list.status, 200, list.text);
  // An active SIM no other test commands (the table's first rows are the other tests').
  const sim = list.json.filter((s) => s.status === 'active' && !s.pending_change).at(-1);
  assert.ok(sim, 'an active SIM');
  const { pages: [page] } = await openPages();
  await page.goto(`/sims/${sim.iccid}`);
  await logIn(page);
  const card = page.getByRole('region', { name: 'Provider controls' });
  await card.waitFor();
  assert.equal(await card.getByTestId('auto-topup').textContent(), 'not set through the platform');

  await card.getByRole('button', { name: 'Switch auto top-up on…' }).click();
  const ask = page.getByRole('dialog', { name: 'Switch auto top-up on?' });
  await ask.getByRole('button', { name: 'Switch auto top-up on' }).click();
  await eventually(async () => (await card.getByTestId('auto-topup').textContent()) === 'on', 60_000, 'auto top-up to be on as 1NCE confirmed it');
  assert.match(await card.getByTestId('auto-topup-outcome').textContent(), /^done \(on\), asked /);

  await card.getByRole('button', { name: 'Reset connectivity…' }).click();
  const reset = page.getByRole('dialog', { name: 'Reset the connectivity of this SIM?' });
  await reset.getByRole('button', { name: 'Reset connectivity' }).click();
  await eventually(async () => (await card.getByTestId('reset-outcome').textContent()).startsWith('done'), 60_000, 'the reset to be queued at 1NCE');
  await card.screenshot({ path: `${OUT}/provider-controls.png` });

  // The API says the same, and the requests card lists both.
  const view = (await api(`/api/v1/sims/${sim.iccid}`)).json;
  assert.equal(view.controls.auto_topup, true);
  assert.equal(view.controls.last_reset.state, 'completed');
  const requests = page.locator('ul.requests li');
  await eventually(
    async () => {
      const texts = await requests.allTextContents();
      return texts.some((t) => t.startsWith('Connectivity reset')) && texts.some((t) => t.startsWith('Auto top-up'));
    },
    15_000,
    'the requests card to list the reset and the auto top-up change',
  );
});
