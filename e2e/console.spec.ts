import { Blake3Hasher } from '@napi-rs/blake-hash';
import crypto from 'node:crypto';
import type { Page } from '@playwright/test';
import { expect, test, type ApiClient } from './support/fixtures';

function blake3Hex(bytes: Buffer): string {
  const hasher = new Blake3Hasher();
  hasher.update(bytes);
  return hasher.digest('hex');
}

function sha256Hex(bytes: Buffer): string {
  return crypto.createHash('sha256').update(bytes).digest('hex');
}

test('sign in and sign out', async ({ console: ui, page, tokens }) => {
  await page.goto('/packages');
  await expect(page).toHaveURL(/\/sign-in/);
  await ui.screenshot('sign-in');

  await ui.signIn(tokens.admin);
  await expect(page.getByTestId('session-actor')).toHaveText(tokens.adminName);
  await expect(page.getByTestId('session-scopes')).toContainText('admin');
  const stored = await page.evaluate(() => JSON.stringify({ ...localStorage }) + JSON.stringify({ ...sessionStorage }));
  expect(stored).not.toContain(tokens.admin);
  expect(page.url()).not.toContain(tokens.admin);

  await ui.signOut();
  await page.goto('/packages');
  await expect(page).toHaveURL(/\/sign-in/);
});

test('sign in with unknown token', async ({ console: ui, page }) => {
  await page.goto('/sign-in');
  await page.getByTestId('token-input').fill('not-a-real-token');
  await page.getByTestId('sign-in-submit').click();
  await expect(page.getByTestId('sign-in-error')).toContainText('unknown or has been revoked');
  await expect(page.getByTestId('session-actor')).toHaveCount(0);
  void ui;
});

test('create form rejects invalid metadata', async ({ console: ui, page, tokens }) => {
  await ui.signIn(tokens.admin);
  await page.goto('/packages/new');
  await page.getByTestId('package-metadata').fill('{"broken": ');
  await expect(page.getByTestId('metadata-check')).toContainText('not valid JSON');
  await expect(page.getByTestId('create-package-submit')).toBeDisabled();
  await page.getByTestId('package-metadata').fill('[1, 2]');
  await expect(page.getByTestId('metadata-check')).toContainText('must be a JSON object');
});

/**
 * Lets the first POST /api/v1/packages reach the server, which creates the package, and then drops its
 * response. Returns the Idempotency-Key of each POST, filled in as they are sent.
 */
async function loseFirstCreateResponse(page: Page): Promise<(string | undefined)[]> {
  const sentKeys: (string | undefined)[] = [];
  await page.route('**/api/v1/packages', async (route) => {
    if (route.request().method() !== 'POST') return route.fallback();
    sentKeys.push(route.request().headers()['idempotency-key']);
    if (sentKeys.length > 1) return route.continue();
    await route.fetch();
    await route.abort('connectionreset');
  });
  return sentKeys;
}

/** Fills the new package form and submits it. */
async function submitPackageForm(page: Page, name: string): Promise<void> {
  await page.getByTestId('package-name').fill(name);
  await page.getByTestId('package-producer').fill('e2e');
  await page.getByTestId('package-subject').fill('lost-response');
  await expect(page.getByTestId('package-class').locator('option')).not.toHaveCount(0);
  await page.getByTestId('create-package-submit').click();
}

/** Returns the ids of the packages named `name`, and the id the package page shows. */
async function createdIds(page: Page, adminApi: ApiClient, name: string): Promise<{ listed: string[]; shown: string | null }> {
  const detail = page.getByTestId('package-detail');
  await expect(detail).toBeVisible();
  const response = await adminApi.get(`/api/v1/packages?name=${encodeURIComponent(name)}`);
  const packages = ((await response.json()) as { packages: { id: string }[] }).packages;
  return { listed: packages.map((pkg) => pkg.id), shown: await detail.getAttribute('data-package-id') };
}

test('create form repeats a lost request', async ({ console: ui, page, tokens, adminApi }) => {
  const name = `e2e-lost-create-${crypto.randomUUID()}`;
  await ui.signIn(tokens.admin);
  await page.goto('/packages/new');
  const sentKeys = await loseFirstCreateResponse(page);
  await submitPackageForm(page, name);
  await expect(page.getByTestId('create-package-error')).toBeVisible();

  await page.getByTestId('create-package-submit').click();
  const { listed, shown } = await createdIds(page, adminApi, name);
  expect(listed).toEqual([shown]);
  expect(sentKeys).toHaveLength(2);
  expect(sentKeys[0]).toMatch(/^"[0-9a-f]{32}"$/);
  expect(sentKeys[1]).toBe(sentKeys[0]);
});

test('create form sends a new key after an edit', async ({ console: ui, page, tokens, adminApi }) => {
  const name = `e2e-edited-create-${crypto.randomUUID()}`;
  await ui.signIn(tokens.admin);
  await page.goto('/packages/new');
  const sentKeys = await loseFirstCreateResponse(page);
  await submitPackageForm(page, `${name}-first`);
  await expect(page.getByTestId('create-package-error')).toBeVisible();

  // The edited form is another request: it gets its own package instead of a 422 for the first key.
  await submitPackageForm(page, `${name}-second`);
  const { listed, shown } = await createdIds(page, adminApi, `${name}-second`);
  expect(listed).toEqual([shown]);
  expect(sentKeys).toHaveLength(2);
  expect(sentKeys[1]).not.toBe(sentKeys[0]);
});

test('finalize shows manifest and digests', async ({ console: ui, page, tokens, adminApi }) => {
  const files = new Map<string, Buffer>([
    ['a/readme.txt', Buffer.from('top-level file\n')],
    ['a/b/c/data.bin', crypto.randomBytes(100 * 1024)],
  ]);
  const { id } = await adminApi.createPackage('e2e-finalize');
  for (const [relativePath, bytes] of files) await adminApi.putFile(id, relativePath, bytes);

  await ui.signIn(tokens.admin);
  await page.goto(`/packages/${id}`);
  await expect(page.getByTestId('file-row')).toHaveCount(files.size);
  for (const [relativePath, bytes] of files) {
    const row = page.locator(`[data-testid="file-row"][data-path="${relativePath}"]`);
    await expect(row.getByTestId('file-blake3'), `BLAKE3 of ${relativePath}`).toHaveText(blake3Hex(bytes));
    await expect(row.getByTestId('file-sha256'), `SHA-256 of ${relativePath}`).toHaveText(sha256Hex(bytes));
  }

  await page.getByTestId('finalize').click();
  await expect(page.getByTestId('finalize-dialog')).toContainText('irreversible');
  await page.getByTestId('finalize-confirm').click();
  await expect(page.getByTestId('package-status')).toHaveText('finalized');
  await expect(page.getByTestId('manifest-digest')).toHaveText(/^blake3:[0-9a-f]{64}$/);
  const manifest = JSON.parse((await page.getByTestId('manifest-json').textContent()) ?? '') as {
    files: { relative_path: string; blake3_hex: string; sha256_hex: string }[];
  };
  expect(manifest.files.map((file) => file.relative_path)).toEqual([...files.keys()].sort());
  for (const entry of manifest.files) {
    expect(entry.sha256_hex, entry.relative_path).toBe(sha256Hex(files.get(entry.relative_path)!));
    expect(entry.blake3_hex, entry.relative_path).toBe(blake3Hex(files.get(entry.relative_path)!));
  }
  await expect(page.getByTestId('finalize')).toHaveCount(0);
  await ui.screenshot('package-finalized');

  await page.goto('/packages?name=e2e-finalize');
  await expect(page.locator(`[data-testid="package-row"][data-package-id="${id}"]`)).toBeVisible();
  await ui.screenshot('packages');
});

test('read-only token cannot finalize', async ({ console: ui, page, tokens, adminApi, readApi }) => {
  const { id } = await adminApi.createPackage('e2e-read-only');
  await ui.signIn(tokens.read);
  await page.goto(`/packages/${id}`);
  const finalize = page.getByTestId('finalize');
  await expect(finalize).toBeDisabled();
  await expect(finalize).toHaveAttribute('title', /lacks the "write" scope/);
  await expect(page.getByTestId('finalize-reason')).toContainText('lacks the "write" scope');

  const response = await readApi.post(`/api/v1/packages/${id}/finalize`);
  expect(response.status()).toBe(403);
  const problem = (await response.json()) as { detail: string };
  expect(problem.detail).toContain('"write" scope');
});

test('live tail shows API event', async ({ console: ui, page, tokens, adminApi }) => {
  await ui.signIn(tokens.admin);
  await page.goto('/events');
  await expect(page.getByTestId('event-connection')).toHaveText('live');

  const { id } = await adminApi.createPackage('e2e-live-tail');
  const row = page.locator(`[data-testid="event-row"][data-subject-id="${id}"]`);
  await expect(row).toBeVisible({ timeout: 1_000 });
  await expect(row.getByRole('link')).toHaveAttribute('href', `/packages/${id}`);
  await ui.screenshot('events');

  await page.getByTestId('event-package-filter').fill(id);
  await page.getByRole('button', { name: 'Apply' }).click();
  await expect(page).toHaveURL(new RegExp(`package=${id}`));
  await expect(page.getByTestId('event-row')).not.toHaveCount(0);
  for (const subject of await page.getByTestId('event-row').evaluateAll((rows) => rows.map((r) => r.getAttribute('data-subject-id')))) {
    expect(subject).toBe(id);
  }
});

test('health page lists backends', async ({ console: ui, page, tokens }) => {
  await ui.signIn(tokens.admin);
  await page.goto('/health');
  await expect(page.getByTestId('health-db')).toHaveText('ok');
  await expect(page.getByTestId('backend-row')).not.toHaveCount(0);
  await expect(page.getByTestId('class-table')).toContainText('standard');
  await ui.screenshot('health');
});

test('event stream resumes after Last-Event-ID', async ({ request, tokens, adminApi }) => {
  const { id } = await adminApi.createPackage('e2e-sse-resume');
  const controller = new AbortController();
  const response = await fetch(`${process.env.E2E_BASE_URL}/api/v1/events/stream?subject_id=${id}`, {
    headers: { Authorization: `Bearer ${tokens.admin}` },
    signal: controller.signal,
  });
  expect(response.status).toBe(200);
  expect(response.headers.get('content-type')).toContain('text/event-stream');
  const reader = response.body!.getReader();
  let text = '';
  while (!text.includes('\n\nid: ') && !/id: \d+\ndata: /.test(text)) {
    const { value, done } = await reader.read();
    if (done) break;
    text += new TextDecoder().decode(value);
  }
  controller.abort();
  const match = /id: (\d+)\ndata: (.*)\n\n/.exec(text);
  expect(match, text).not.toBeNull();
  const event = JSON.parse(match![2]) as { sequence: number; subject_id: string; event_type: string };
  expect(event.subject_id).toBe(id);
  expect(String(event.sequence)).toBe(match![1]);

  const resumed = new AbortController();
  const again = await fetch(`${process.env.E2E_BASE_URL}/api/v1/events/stream?subject_id=${id}`, {
    headers: { Authorization: `Bearer ${tokens.admin}`, 'Last-Event-ID': match![1] },
    signal: resumed.signal,
  });
  await adminApi.putFile(id, 'after-resume.txt', Buffer.from('x'));
  const againReader = again.body!.getReader();
  let resumedText = '';
  while (!/id: \d+\ndata: .*\n\n/.test(resumedText)) {
    const { value, done } = await againReader.read();
    if (done) break;
    resumedText += new TextDecoder().decode(value);
  }
  resumed.abort();
  const next = /id: (\d+)\ndata: /.exec(resumedText);
  expect(Number(next![1])).toBeGreaterThan(event.sequence);
  void request;
});

test('API reference lists operations and schemas', async ({ console: ui, page, tokens }) => {
  await ui.signIn(tokens.read);
  await page.getByRole('link', { name: 'API reference' }).click();
  await expect(page).toHaveURL(/\/api-reference$/);
  await ui.screenshot('api-reference');

  const index = page.getByTestId('api-reference-index');
  await expect(index.getByRole('link', { name: 'POST /packages', exact: true })).toBeVisible();
  await expect(index.getByRole('link', { name: 'PATCH /uploads/{id}' })).toBeVisible();

  const create = page.getByTestId('operation-createPackage');
  await expect(create).toContainText('"write" scope');
  await expect(create.getByRole('row', { name: /^201/ })).toContainText('Package');
  await expect(create.getByRole('row', { name: /^415/ })).toContainText('application/problem+json');
  await expect(page.getByTestId('schema-Problem')).toContainText('expected_offset');
  await expect(page.getByRole('link', { name: '/api/v1/openapi.json' })).toHaveAttribute('href', '/api/v1/openapi.json');
});
