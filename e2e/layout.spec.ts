import type { Page } from '@playwright/test';
import { expect, test } from './support/fixtures';

const VIEWPORTS = [
  { width: 1280, height: 800 },
  { width: 1920, height: 1080 },
];

async function expectNoHorizontalScroll(page: Page, description: string): Promise<void> {
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);
  expect(overflow, `${description} scrolls sideways by ${overflow} px`).toBeLessThanOrEqual(0);
}

test('long file paths wrap in files table', async ({ console: ui, page, tokens, adminApi }) => {
  const longPath = `${'deeply-nested-directory/'.repeat(8)}${'unbroken_file_name_'.repeat(16)}.tar.gz`;
  const { id } = await adminApi.createPackage('e2e-long-path');
  await adminApi.putFile(id, longPath, Buffer.from('long path\n'));
  await adminApi.putFile(id, 'short.txt', Buffer.from('short\n'));

  await ui.signIn(tokens.admin);
  for (const viewport of VIEWPORTS) {
    await page.setViewportSize(viewport);
    await page.goto(`/packages/${id}`);
    const cell = page.locator(`[data-testid="file-row"][data-path="${longPath}"]`).getByTestId('file-path');
    await expect(cell).toHaveText(longPath);
    await expect(cell).toHaveAttribute('title', longPath);

    const table = await page.getByTestId('files-table').boundingBox();
    expect(table, 'files table is laid out').not.toBeNull();
    expect(table!.x + table!.width, `files table fits ${viewport.width} px`).toBeLessThanOrEqual(viewport.width);
    await expectNoHorizontalScroll(page, `package page at ${viewport.width}x${viewport.height}`);
    await cell.scrollIntoViewIfNeeded();
    await ui.screenshot(`files-long-path-${viewport.width}x${viewport.height}`);
  }
});

test('durations shorter than a day', async ({ console: ui, page, tokens }) => {
  await ui.signIn(tokens.admin);
  await page.goto('/health');
  const scratch = page.locator('[data-testid="class-row"][data-class-id="scratch"]');
  await expect(scratch.getByTestId('class-duration')).toHaveText('1 hour 30 minutes');
  await expect(scratch.getByTestId('class-duration')).toHaveAttribute('title', '5400 seconds');
  await expect(page.locator('[data-testid="class-row"][data-class-id="standard"]').getByTestId('class-duration')).toHaveText('365 days');
  await expect(page.locator('[data-testid="class-row"][data-class-id="permanent"]').getByTestId('class-duration')).toHaveText('no expiry');

  await page.goto('/packages/new');
  await expect(page.getByTestId('package-class').locator('option[value="scratch"]')).toHaveText('scratch (1 hour 30 minutes)');
});

test('open package expiry is set at finalize', async ({ console: ui, page, tokens, adminApi }) => {
  const { id } = await adminApi.createPackage('e2e-expiry');
  await adminApi.putFile(id, 'payload.txt', Buffer.from('expiry\n'));

  await ui.signIn(tokens.admin);
  await page.goto(`/packages/${id}`);
  await expect(page.getByTestId('package-expires')).toHaveText('set at finalize (class standard: 365 days)');
  await expect(page.getByTestId('retention-expires')).toHaveText('set at finalize (class standard: 365 days)');
  await ui.screenshot('package-open-expiry');

  expect((await adminApi.post(`/api/v1/packages/${id}/finalize`)).status()).toBe(200);
  const finalized = (await (await adminApi.get(`/api/v1/packages/${id}`)).json()) as { expires_at: string };
  const expectedText = finalized.expires_at.replace('T', ' ').replace(/\.\d+Z$/, 'Z');
  await page.reload();
  await expect(page.getByTestId('package-expires')).toHaveText(expectedText);
  await expect(page.getByTestId('retention-expires')).toHaveText(expectedText);
});

test('console pages fit both viewports', async ({ console: ui, page, tokens, adminApi }) => {
  const { id } = await adminApi.createPackage('e2e-viewports');
  const pages = [
    { path: '/packages', ready: 'package-row' },
    { path: '/packages/new', ready: 'create-package-form' },
    { path: `/packages/${id}`, ready: 'retention-state' },
    { path: '/events', ready: 'event-connection' },
    { path: '/health', ready: 'schema-register-form' },
  ];
  await ui.signIn(tokens.admin);
  for (const viewport of VIEWPORTS) {
    await page.setViewportSize(viewport);
    for (const entry of pages) {
      await page.goto(entry.path);
      await expect(page.getByTestId(entry.ready).first()).toBeVisible();
      await expectNoHorizontalScroll(page, `${entry.path} at ${viewport.width}x${viewport.height}`);
    }
    await page.goto('/health');
    await expect(page.getByTestId('class-row')).not.toHaveCount(0);
    await ui.screenshot(`health-${viewport.width}x${viewport.height}`);
  }
});
