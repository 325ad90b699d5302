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

/** Sends `text` unchanged as a JSON request body, for keys such as `__proto__` that an object literal cannot hold. */
function postRawJson(api: ApiClient, pathname: string, text: string) {
  return api.request.post(pathname, { headers: { Authorization: `Bearer ${api.token}`, 'Content-Type': 'application/json' }, data: text });
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

const SERVER_REJECTED_SCHEMAS = [
  { name: 'NUL character', text: '{"properties":{"a":{"const":"x\\u0000y"}}}', state: 'rejected', message: 'schema.properties.a.const contains the NUL character', status: 400 },
  { name: 'integer above 2^53', text: '{"properties":{"n":{"maximum":9007199254740993}}}', state: 'rejected', message: 'outside ±(2^53 − 1)', status: 400 },
  {
    name: '__proto__ key',
    text: '{"properties":{"__proto__":{"type":"string"}}}',
    state: 'rejected',
    message: 'The key "__proto__" is not allowed in request bodies. Rename the key at schema.properties.__proto__.',
    status: 400,
  },
  { name: 'repeated key', text: '{"type":"object","type":"string"}', state: 'rejected', message: 'The key at schema.type appears more than once in its object.', status: 400 },
  { name: 'self reference', text: '{"$ref":"#"}', state: 'compile', message: 'The schema cannot be registered: schema recursion too deep', status: 400 },
  { name: 'dynamic self reference', text: '{"$dynamicAnchor":"x","$dynamicRef":"#x"}', state: 'compile', message: 'schema recursion too deep', status: 400 },
  { name: 'body over 1 MiB', text: `{"description":"${'x'.repeat(1_100_000)}"}`, state: 'rejected', message: 'The schema is too large: the request would be', status: 413 },
];

test('schema editor applies server rules', async ({ console: ui, page, tokens, adminApi }) => {
  await ui.signIn(tokens.admin);
  const consoleErrors = recordConsoleErrors(page);
  await page.goto('/health');
  const posts = recordPosts(page, '/api/v1/metadata-schemas');
  const check = page.getByTestId('schema-json-check');

  for (const { name, text, state, message, status } of SERVER_REJECTED_SCHEMAS) {
    const slug = uniqueSlug('e2e-rule');
    await page.getByLabel('Slug').fill(slug);
    await page.getByLabel('JSON Schema (draft 2020-12)').fill(text);
    await expect(check, name).toHaveAttribute('data-state', state);
    await expect(check, name).toContainText(message);
    await expect(page.getByTestId('schema-json'), name).toHaveAttribute('aria-invalid', 'true');
    await expect(page.getByTestId('schema-register-submit'), name).toBeDisabled();

    const server = await postRawJson(adminApi, '/api/v1/metadata-schemas', `{"slug":"${slug}","schema":${text}}`);
    expect(server.status(), `the server rejects the ${name} too`).toBe(status);
    await expectNoSchema(adminApi, slug);
  }
  expect(posts).toHaveLength(0);
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

test('create form applies server rules', async ({ console: ui, page, tokens, adminApi }) => {
  const slug = uniqueSlug('e2e-proto');
  expect((await adminApi.post('/api/v1/metadata-schemas', { slug, schema: BUILD_SCHEMA })).status()).toBe(201);
  await ui.signIn(tokens.admin);
  const consoleErrors = recordConsoleErrors(page);
  await page.goto('/packages/new');
  const posts = recordPosts(page, '/api/v1/packages');

  await page.getByLabel('Metadata schema').selectOption(slug);
  const withProto = '{"commit": "abcdef12", "__proto__": {"a": 1}}';
  await page.getByLabel('Metadata (JSON object)').fill(withProto);
  await expect(page.locator('[data-testid="metadata-issue"][data-field="metadata.__proto__"][data-rule="no_proto_key"]')).toBeVisible();
  await expect(page.getByTestId('create-package-submit')).toBeDisabled();
  const protoResponse = await postRawJson(
    adminApi,
    '/api/v1/packages',
    `{"name":"n","producer":"e2e","subject":"s","retention_class":"standard","metadata_schema":"${slug}","metadata":${withProto}}`,
  );
  expect(protoResponse.status()).toBe(400);
  expect(((await protoResponse.json()) as { errors: { field: string; rule: string }[] }).errors[0]).toMatchObject({ field: 'metadata.__proto__', rule: 'no_proto_key' });

  // JSON.parse would keep only the second commit, so the form flags the text the server would reject.
  const repeated = '{"commit": "abcdef12", "commit": "12abcdef"}';
  await page.getByLabel('Metadata (JSON object)').fill(repeated);
  await expect(page.locator('[data-testid="metadata-issue"][data-field="metadata.commit"][data-rule="unique_keys"]')).toBeVisible();
  await expect(page.getByTestId('create-package-submit')).toBeDisabled();
  const repeatedResponse = await postRawJson(
    adminApi,
    '/api/v1/packages',
    `{"name":"n","producer":"e2e","subject":"s","retention_class":"standard","metadata_schema":"${slug}","metadata":${repeated}}`,
  );
  expect(repeatedResponse.status()).toBe(400);
  expect(((await repeatedResponse.json()) as { errors: { field: string; rule: string }[] }).errors[0]).toMatchObject({ field: 'metadata.commit', rule: 'unique_keys' });

  // 65,536 bytes is the server's default MAX_METADATA_BYTES, which the e2e server keeps.
  await page.getByLabel('Metadata schema').selectOption('');
  const large = { blob: 'x'.repeat(70_000) };
  await page.getByLabel('Metadata (JSON object)').fill(JSON.stringify(large));
  const sizeIssue = page.locator('[data-testid="metadata-issue"][data-field="metadata"][data-rule="max_bytes"]');
  await expect(sizeIssue).toContainText('is 70011 bytes of JSON; at most 65536 bytes are allowed');
  await expect(page.getByTestId('create-package-submit')).toBeDisabled();
  const sizeResponse = await adminApi.post('/api/v1/packages', { name: 'n', producer: 'e2e', subject: 's', retention_class: 'standard', metadata: large });
  expect(sizeResponse.status()).toBe(400);
  expect(((await sizeResponse.json()) as { errors: { rule: string }[] }).errors[0].rule).toBe('max_bytes');

  expect(posts).toHaveLength(0);
  expect(consoleErrors).toEqual([]);
});

test('create form survives deep recursion', async ({ console: ui, page, tokens, adminApi }) => {
  const slug = uniqueSlug('e2e-tree');
  const tree = { type: 'object', properties: { c: { $ref: '#' } } };
  expect((await adminApi.post('/api/v1/metadata-schemas', { slug, schema: tree })).status()).toBe(201);
  await ui.signIn(tokens.admin);
  await page.goto('/packages/new');
  const posts = recordPosts(page, '/api/v1/packages');

  await page.getByLabel('Metadata schema').selectOption(slug);
  // Validating 100,000 levels against the recursive schema overflows the browser's stack.
  const depth = 100_000;
  await page.getByLabel('Metadata (JSON object)').fill(`${'{"c":'.repeat(depth)}{}${'}'.repeat(depth)}`);
  await expect(page.locator('[data-testid="metadata-issue"][data-rule="max_depth"]')).toBeVisible();
  await expect(page.locator('[data-testid="metadata-issue"][data-field="metadata"][data-rule="schema_recursion"]')).toContainText('schema recursion too deep');
  await expect(page.getByTestId('create-package-form')).toBeVisible();
  await expect(page.getByTestId('create-package-submit')).toBeDisabled();
  expect(posts).toHaveLength(0);
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
  // One page of the list API returns at most 500 schemas, so of 501 new ones the last is past the first page.
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
