import type { Page, Request } from '@playwright/test';
import crypto from 'node:crypto';
import path from 'node:path';
import { expect, SCREENSHOTS, test, type ApiClient } from './support/fixtures';

/** Collects the POST requests the page sends to one API path, to prove that nothing was sent. */
function recordPosts(page: Page, pathname: string): Request[] {
  const sent: Request[] = [];
  page.on('request', (request) => {
    if (request.method() === 'POST' && new URL(request.url()).pathname === pathname) sent.push(request);
  });
  return sent;
}

/**
 * Collects the page's console errors. Chromium also logs every HTTP error status of a fetch as "Failed to
 * load resource", which the tests that expect a 4xx response cause on purpose, so those are left out.
 */
function recordConsoleErrors(page: Page): string[] {
  const errors: string[] = [];
  page.on('console', (message) => {
    if (message.type() === 'error' && !message.text().startsWith('Failed to load resource')) errors.push(message.text());
  });
  page.on('pageerror', (error) => errors.push(error.message));
  return errors;
}

function uniqueSlug(prefix: string): string {
  return `${prefix}-${crypto.randomBytes(4).toString('hex')}`;
}

async function expectNoSchema(api: ApiClient, slug: string): Promise<void> {
  expect((await api.get(`/api/v1/metadata-schemas/${slug}`)).status()).toBe(404);
}

async function packagesNamed(api: ApiClient, name: string): Promise<{ id: string; metadata_schema: string | null }[]> {
  const response = await api.get(`/api/v1/packages?name=${encodeURIComponent(name)}`);
  expect(response.status()).toBe(200);
  return ((await response.json()) as { packages: { id: string; metadata_schema: string | null }[] }).packages;
}

const BUILD_SCHEMA = {
  type: 'object',
  required: ['commit'],
  additionalProperties: false,
  properties: { commit: { type: 'string', pattern: '^[0-9a-f]{7,40}$' }, attempt: { type: 'integer', minimum: 1 } },
};

test('schema editor shows JSON syntax error', async ({ console: ui, page, tokens, adminApi }) => {
  const slug = uniqueSlug('e2e-syntax');
  await ui.signIn(tokens.admin);
  await page.goto('/health');
  const posts = recordPosts(page, '/api/v1/metadata-schemas');

  await page.getByLabel('Slug').fill(slug);
  await page.getByLabel('JSON Schema (draft 2020-12)').fill('{\n  "type": "object"\n  "required": ["commit"]\n}');
  const check = page.getByTestId('schema-json-check');
  await expect(check).toHaveAttribute('data-state', 'syntax');
  await expect(check).toHaveText('Invalid JSON at line 3, column 3: expected ",".');
  await expect(page.getByTestId('schema-json')).toHaveAttribute('aria-invalid', 'true');
  await expect(page.getByTestId('schema-register-submit')).toBeDisabled();

  // Enter in the slug field would submit the form implicitly if the form allowed it.
  await page.getByTestId('schema-slug').press('Enter');
  await page.getByTestId('schema-register-form').screenshot({ path: path.join(SCREENSHOTS, 'schema-json-error.png') });
  expect(posts).toHaveLength(0);
  await expectNoSchema(adminApi, slug);

  await page.getByLabel('JSON Schema (draft 2020-12)').fill('{"type": "object",}');
  await expect(check).toHaveText('Invalid JSON at line 1, column 19: expected a property name in double quotes.');
});

test('schema editor shows compile error', async ({ console: ui, page, tokens, adminApi }) => {
  const slug = uniqueSlug('e2e-compile');
  await ui.signIn(tokens.admin);
  await page.goto('/health');
  const posts = recordPosts(page, '/api/v1/metadata-schemas');

  await page.getByLabel('Slug').fill(slug);
  await page.getByLabel('JSON Schema (draft 2020-12)').fill('{"type": "no-such-type"}');
  const check = page.getByTestId('schema-json-check');
  await expect(check).toHaveAttribute('data-state', 'compile');
  await expect(check).toContainText('The schema does not compile: schema is invalid: data/type must be equal to one of the allowed values');
  await expect(page.getByTestId('schema-register-submit')).toBeDisabled();
  await page.getByTestId('schema-register-form').screenshot({ path: path.join(SCREENSHOTS, 'schema-compile-error.png') });

  // Lookahead compiles in JavaScript's RegExp but not in RE2, which the server uses; the browser uses it too.
  await page.getByLabel('JSON Schema (draft 2020-12)').fill('{"type": "string", "pattern": "^(?=a)a$"}');
  await expect(check).toHaveAttribute('data-state', 'compile');
  await expect(check).toContainText('The schema does not compile');
  await page.getByTestId('schema-slug').press('Enter');

  expect(posts).toHaveLength(0);
  await expectNoSchema(adminApi, slug);
  const server = await adminApi.post('/api/v1/metadata-schemas', { slug, schema: { type: 'string', pattern: '^(?=a)a$' } });
  expect(server.status(), 'the server rejects the same schema').toBe(400);
});

test('valid schema registers and is listed', async ({ console: ui, page, tokens, adminApi }) => {
  const slug = uniqueSlug('e2e-build');
  await ui.signIn(tokens.admin);
  const consoleErrors = recordConsoleErrors(page);
  await page.goto('/health');
  await expect(page.getByTestId('schema-list')).toBeAttached();

  // Keyboard only: type the slug, Tab to the editor, Tab to the button, Enter.
  await page.getByTestId('schema-slug').focus();
  await page.keyboard.type(slug);
  await page.keyboard.press('Tab');
  await expect(page.getByTestId('schema-json')).toBeFocused();
  await page.keyboard.insertText(JSON.stringify(BUILD_SCHEMA, null, 2));
  await expect(page.getByTestId('schema-json-check')).toHaveText('Valid JSON Schema.');
  await page.keyboard.press('Tab');
  await expect(page.getByTestId('schema-register-submit')).toBeFocused();
  await page.keyboard.press('Enter');

  await expect(page.getByTestId('schema-register-success')).toHaveText(`Registered schema ${slug}.`);
  await expect(page.locator(`[data-testid="schema-item"][data-slug="${slug}"]`)).toBeVisible();
  await page.getByTestId('schema-register-success').scrollIntoViewIfNeeded();
  await ui.screenshot('schema-registered');
  const stored = await adminApi.get(`/api/v1/metadata-schemas/${slug}`);
  expect(stored.status()).toBe(200);
  expect(((await stored.json()) as { schema: unknown }).schema).toEqual(BUILD_SCHEMA);

  // Schemas are immutable: the same slug again is the server's 409, shown with its detail and no stale success.
  await page.getByTestId('schema-json').fill('{"type": "object"}');
  await expect(page.getByTestId('schema-register-success')).toHaveCount(0);
  await page.getByTestId('schema-register-submit').click();
  await expect(page.getByTestId('schema-register-error')).toContainText(`A metadata schema with slug "${slug}" already exists`);
  await expect(page.getByTestId('schema-register-success')).toHaveCount(0);

  await page.goto('/packages/new');
  await expect(page.getByTestId('package-schema').locator(`option[value="${slug}"]`)).toHaveCount(1);
  // An invalid `pattern` attribute on the slug field logs an error on every keystroke.
  expect(consoleErrors).toEqual([]);
});

test('create form checks metadata against schema', async ({ console: ui, page, tokens, adminApi }) => {
  const slug = uniqueSlug('e2e-meta');
  const registered = await adminApi.post('/api/v1/metadata-schemas', { slug, schema: BUILD_SCHEMA });
  expect(registered.status(), await registered.text()).toBe(201);
  const name = uniqueSlug('e2e-schema-package');

  await ui.signIn(tokens.admin);
  await page.goto('/packages/new');
  const posts = recordPosts(page, '/api/v1/packages');
  await page.getByLabel('Name').fill(name);
  await page.getByLabel('Producer').fill('e2e');
  await page.getByLabel('Subject').fill('schemas');
  await page.getByLabel('Metadata schema').selectOption(slug);
  await page.getByLabel('Metadata (JSON object)').fill('{\n  "commit": "XYZ",\n  "attempt": 0,\n  "branch": "main"\n}');

  const issues = page.getByTestId('metadata-issue');
  await expect(issues).toHaveCount(3);
  await expect(page.locator('[data-testid="metadata-issue"][data-field="metadata.commit"][data-rule="pattern"]')).toContainText(
    'must match pattern "^[0-9a-f]{7,40}$"',
  );
  await expect(page.locator('[data-testid="metadata-issue"][data-field="metadata.attempt"][data-rule="minimum"]')).toContainText('must be >= 1');
  await expect(page.locator('[data-testid="metadata-issue"][data-field="metadata.branch"][data-rule="additionalProperties"]')).toBeVisible();
  await expect(page.getByTestId('metadata-check')).toHaveText('The metadata is invalid:');
  await expect(page.getByTestId('package-metadata')).toHaveAttribute('aria-invalid', 'true');
  await expect(page.getByTestId('create-package-submit')).toBeDisabled();
  await page.getByLabel('Name').press('Enter');
  await ui.screenshot('create-metadata-invalid');
  expect(posts).toHaveLength(0);
  expect(await packagesNamed(adminApi, name)).toEqual([]);

  await page.getByLabel('Metadata (JSON object)').fill('{"attempt": 2}');
  await expect(page.locator('[data-testid="metadata-issue"][data-field="metadata.commit"][data-rule="required"]')).toBeVisible();
  await expect(issues).toHaveCount(1);

  await page.getByLabel('Metadata (JSON object)').fill('{"commit": "abc1234", "attempt": 2}');
  await expect(issues).toHaveCount(0);
  await expect(page.getByTestId('metadata-check')).toHaveText(`Valid JSON object that matches schema "${slug}".`);
  await page.getByTestId('create-package-submit').click();
  await expect(page.getByTestId('package-detail')).toBeVisible();
  expect(posts).toHaveLength(1);
  const created = await packagesNamed(adminApi, name);
  expect(created).toHaveLength(1);
  expect(created[0].metadata_schema).toBe(slug);
});

test('create form rejects unstorable numbers', async ({ console: ui, page, tokens }) => {
  await ui.signIn(tokens.admin);
  await page.goto('/packages/new');
  const posts = recordPosts(page, '/api/v1/packages');
  // JSON.parse reads 1e999 as Infinity, which JSON.stringify would send as null.
  await page.getByLabel('Metadata (JSON object)').fill('{"size": 1e999, "id": 9007199254740993}');
  await expect(page.locator('[data-testid="metadata-issue"][data-field="metadata.size"][data-rule="finite_number"]')).toBeVisible();
  await expect(page.locator('[data-testid="metadata-issue"][data-field="metadata.id"][data-rule="safe_integer"]')).toBeVisible();
  await expect(page.getByTestId('create-package-submit')).toBeDisabled();
  expect(posts).toHaveLength(0);
});

test('create form shows server rejection', async ({ console: ui, page, tokens, adminApi }) => {
  const producer = uniqueSlug('e2e-server-400');
  await ui.signIn(tokens.admin);
  await page.goto('/packages/new');
  // The browser does not check the name's length; the server allows at most 256 characters.
  await page.getByLabel('Name').fill('n'.repeat(300));
  await page.getByLabel('Producer').fill(producer);
  await page.getByLabel('Subject').fill('schemas');
  await page.getByTestId('create-package-submit').click();
  await expect(page.getByTestId('create-package-error')).toContainText('Invalid request');
  await expect(page.getByTestId('create-package-error')).toContainText('name');
  await expect(page.getByTestId('package-detail')).toHaveCount(0);
  await ui.screenshot('create-server-error');

  const response = await adminApi.get(`/api/v1/packages?producer=${producer}`);
  expect(((await response.json()) as { packages: unknown[] }).packages).toEqual([]);
});

test('schema lists show every page', async ({ console: ui, page, tokens, adminApi }) => {
  // One page of the list API holds at most 500 schemas; 501 new ones put the last past the first page.
  const prefix = uniqueSlug('zz-page');
  const slugs = Array.from({ length: 501 }, (_, index) => `${prefix}-${String(index).padStart(3, '0')}`);
  for (let start = 0; start < slugs.length; start += 25) {
    const batch = slugs.slice(start, start + 25).map((slug) => adminApi.post('/api/v1/metadata-schemas', { slug, schema: { type: 'object' } }));
    for (const response of await Promise.all(batch)) expect(response.status()).toBe(201);
  }
  const last = slugs[slugs.length - 1];

  await ui.signIn(tokens.admin);
  await page.goto('/health');
  await expect(page.locator(`[data-testid="schema-item"][data-slug="${last}"]`)).toHaveCount(1);
  await expect(page.locator(`[data-testid="schema-item"][data-slug^="${prefix}-"]`)).toHaveCount(501);

  await page.goto('/packages/new');
  await expect(page.getByTestId('package-schema').locator(`option[value="${last}"]`)).toHaveCount(1);
  await page.getByLabel('Metadata schema').selectOption(last);
  await expect(page.getByTestId('metadata-check')).toHaveText(`Valid JSON object that matches schema "${last}".`);
});
