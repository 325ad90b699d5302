import { expect, test } from './support/fixtures';

test('hold, release and extension history', async ({ console: ui, page, tokens, adminApi }) => {
  const { id } = await adminApi.createPackage('e2e-retention');
  await adminApi.putFile(id, 'payload.txt', Buffer.from('retained bytes\n'));
  const finalized = await adminApi.post(`/api/v1/packages/${id}/finalize`);
  expect(finalized.status(), await finalized.text()).toBe(200);

  await ui.signIn(tokens.admin);
  await page.goto(`/packages/${id}`);
  const panel = page.getByTestId('retention-panel');
  await expect(panel.getByTestId('retention-state')).toBeVisible();
  const history = panel.getByTestId('history-entry');
  await expect(history.filter({ hasText: 'package.finalized' })).toHaveCount(1);
  const before = await history.count();

  await panel.getByTestId('hold-reason').fill('legal review 2031');
  await panel.getByTestId('apply-hold').click();
  await expect(panel.getByTestId('active-hold')).toHaveCount(1);
  await expect(panel.getByTestId('retention-eligible')).toContainText('no');
  await expect(panel.locator('[data-testid="history-entry"][data-event-type="retention.hold_applied"]')).toContainText('legal review 2031');

  await panel.getByTestId('release-reason').fill('review closed');
  await panel.getByTestId('release-hold').click();
  await expect(panel.getByTestId('active-hold')).toHaveCount(0);
  await expect(panel.locator('[data-testid="history-entry"][data-event-type="retention.hold_released"]')).toContainText('review closed');

  const target = new Date(Date.now() + 2 * 365 * 86_400_000);
  const local = new Date(target.getTime() - target.getTimezoneOffset() * 60_000).toISOString().slice(0, 16);
  await panel.getByTestId('extend-date').fill(local);
  await panel.getByTestId('extend-reason').fill('audit requires two years');
  await panel.getByTestId('extend-expiry').click();
  await expect(panel.locator('[data-testid="history-entry"][data-event-type="retention.extended"]')).toContainText('audit requires two years');
  await expect(panel.getByTestId('retention-expires')).toContainText(String(target.getUTCFullYear()));
  expect(await history.count()).toBe(before + 3);
  await ui.screenshot('retention');
});

test('shortened expiry shows conflict', async ({ console: ui, page, tokens, adminApi }) => {
  const { id } = await adminApi.createPackage('e2e-retention-shorten');
  await adminApi.putFile(id, 'payload.txt', Buffer.from('x'));
  expect((await adminApi.post(`/api/v1/packages/${id}/finalize`)).status()).toBe(200);

  await ui.signIn(tokens.admin);
  await page.goto(`/packages/${id}`);
  const panel = page.getByTestId('retention-panel');
  await panel.getByTestId('extend-date').fill('2001-01-01T00:00');
  await panel.getByTestId('extend-reason').fill('try to shorten');
  await panel.getByTestId('extend-expiry').click();
  await expect(panel.getByTestId('extend-error')).toBeVisible();
  await expect(panel.locator('[data-testid="history-entry"][data-event-type="retention.extended"]')).toHaveCount(0);
});

test('read-only token cannot change retention', async ({ console: ui, page, tokens, adminApi }) => {
  const { id } = await adminApi.createPackage('e2e-retention-read');
  await ui.signIn(tokens.read);
  await page.goto(`/packages/${id}`);
  const panel = page.getByTestId('retention-panel');
  await expect(panel.getByTestId('apply-hold')).toBeDisabled();
  await expect(panel.getByTestId('apply-hold')).toHaveAttribute('title', /lacks the "retention" scope/);
});
