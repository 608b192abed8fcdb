// The admin's users section in Debian's chromium against the real services through the gateway:
// a user created, their role changed, then disabled, seen from the user's own browser too.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { api, eventually, logIn, openPages, sentToken, useBrowser } from './harness.mjs';

useBrowser();

test('an admin creates a user, changes their role and disables them; the disabled user is refused', async () => {
  const { pages: [admin] } = await openPages();
  await admin.goto('/admin');
  await logIn(admin);
  await admin.getByRole('heading', { name: 'Users' }).waitFor();

  const user = { username: `user-${Date.now()}`, password: 'pw-admin-browser-test-1' };
  await admin.getByRole('button', { name: 'New user…' }).click();
  const dialog = admin.getByRole('dialog', { name: 'New user' });
  await dialog.getByLabel('Username').fill(user.username);
  await dialog.getByLabel('Password').fill(user.password);
  await dialog.getByLabel('Role').selectOption('viewer');
  await dialog.getByRole('button', { name: 'Create user' }).click();
  await dialog.waitFor({ state: 'detached' });
  const row = admin.getByTestId('user-row').filter({ has: admin.getByRole('rowheader', { name: user.username }) });
  await row.waitFor();
  assert.equal(await row.getByRole('combobox', { name: `Role of ${user.username}` }).inputValue(), 'viewer');
  assert.match(await row.textContent(), /enabled/);

  // The user signs in in their own browser: a viewer, without command buttons.
  const { pages: [own] } = await openPages();
  const sent = sentToken(own);
  await own.goto('/sims');
  await logIn(own, user);
  await own.locator('table.sims tbody tr').first().waitFor();
  await own.getByRole('button', { name: 'Export CSV' }).waitFor();
  assert.equal(await own.getByRole('button', { name: 'Suspend…' }).count(), 0);

  // Made an operator: their next refresh (a reload) brings the new role and its buttons.
  await row.getByRole('combobox', { name: `Role of ${user.username}` }).selectOption('operator');
  await eventually(async () => (await api('/api/v1/users')).json.find((u) => u.username === user.username)?.role === 'operator', 10_000, 'the role change');
  assert.equal(await row.getByRole('combobox', { name: `Role of ${user.username}` }).inputValue(), 'operator');
  await own.reload();
  await own.getByRole('button', { name: 'Suspend…' }).waitFor();
  assert.match(await own.locator('.topbar .user').textContent(), /\(operator\)/);

  // Disabled: the row says so, and the user's session is over everywhere.
  await row.getByRole('button', { name: `Disable ${user.username}` }).click();
  await row.getByText('disabled', { exact: true }).waitFor();
  await row.getByRole('button', { name: `Enable ${user.username}` }).waitFor();
  const token = sent();
  assert.ok(token, 'the user page sent their access token');
  // Their access token is refused within seconds (each process reads the user's state again).
  await eventually(async () => (await api('/api/v1/sims?page_size=1', { token })).status === 401, 30_000, 'the access token to be refused');
  // Their refresh cookie too: a reload asks them to log in.
  await own.reload();
  const login = own.getByRole('dialog', { name: 'Log in' });
  await login.waitFor();
  // And the password no longer works.
  await login.getByLabel('Username').fill(user.username);
  await login.getByLabel('Password').fill(user.password);
  await login.getByRole('button', { name: 'Log in' }).click();
  await login.getByRole('alert').waitFor();
  assert.equal(await login.count(), 1);
});
