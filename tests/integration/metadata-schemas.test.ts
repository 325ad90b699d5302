import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connectDatabase } from '@/db/client';
import { metadataSchemas } from '@/db/schema';
import { ApiClient, problemOf } from '../support/client';
import { createTestEnvironment, startServer, type TestEnvironment, type TestServer } from '../support/server';

const ROOT = path.resolve(import.meta.dirname, '../..');

/** A MAX_METADATA_BYTES other than the default, to show that the console receives the setting. */
const MAX_METADATA_BYTES = 70_000;

/** Stored as if registered before registration rejected schemas whose validation never ends. */
const STORED_RECURSIVE_SCHEMA = { $ref: '#' };

let environment: TestEnvironment;
let server: TestServer;
let api: ApiClient;

beforeAll(async () => {
  environment = await createTestEnvironment();
  // PGlite allows one process at a time, so the row is written before the server starts.
  const connection = await connectDatabase({
    databaseUrl: environment.env.DATABASE_URL,
    pgliteDir: path.join(environment.dir, 'data', 'pglite'),
    migrationsFolder: path.join(ROOT, 'db/migrations'),
  });
  try {
    await connection.db
      .insert(metadataSchemas)
      .values({ slug: 'stored-recursive', schema: STORED_RECURSIVE_SCHEMA, createdBy: 'test-setup', createdAt: new Date() });
  } finally {
    await connection.close();
  }
  server = await startServer(environment, { MAX_METADATA_BYTES: String(MAX_METADATA_BYTES) });
  api = new ApiClient(server.url, environment.adminToken);
});

afterAll(async () => {
  await server?.stop();
  await environment?.cleanup();
});

function packageBody(metadataSchema: string | null, metadata: unknown) {
  return { name: 'n', producer: 'p', subject: 's', retention_class: 'standard', metadata_schema: metadataSchema, metadata };
}

describe('schema recursion', () => {
  it('rejects self-referencing schemas at registration', async () => {
    const schemas = [{ $ref: '#' }, { $dynamicAnchor: 'x', $dynamicRef: '#x' }, { $defs: { a: { $ref: '#/$defs/a' } }, $ref: '#/$defs/a' }];
    for (const [index, schema] of schemas.entries()) {
      const slug = `recursive-${index}`;
      const response = await api.post('/metadata-schemas', { slug, schema });
      expect(response.status, JSON.stringify(schema)).toBe(400);
      const problem = await problemOf(response);
      expect(problem.errors[0].field).toBe('schema');
      expect(problem.errors[0].rule).toBe('schema_recursion');
      expect(problem.errors[0].message).toContain('schema recursion too deep');
      expect((await api.get(`/metadata-schemas/${slug}`)).status).toBe(404);
    }
  });

  it('accepts a tree schema and validates nested metadata', async () => {
    const tree = { type: 'object', properties: { children: { type: 'array', items: { $ref: '#' } } } };
    expect((await api.post('/metadata-schemas', { slug: 'tree', schema: tree })).status).toBe(201);

    let metadata: Record<string, unknown> = {};
    for (let level = 0; level < 40; level++) metadata = { children: [metadata] };
    expect((await api.post('/packages', packageBody('tree', metadata))).status).toBe(201);

    const wrong = await api.post('/packages', packageBody('tree', { children: [{ children: 'none' }] }));
    expect(wrong.status).toBe(400);
    expect((await problemOf(wrong)).errors[0].field).toBe('metadata.children[0].children');
  });

  it('answers 400 naming a stored recursive schema', async () => {
    const response = await api.post('/packages', packageBody('stored-recursive', { a: 1 }));
    expect(response.status).toBe(400);
    const problem = await problemOf(response);
    expect(problem.detail).toContain('Metadata schema "stored-recursive" cannot be used');
    expect(problem.errors[0].field).toBe('metadata_schema');
    expect(problem.errors[0].rule).toBe('schema_recursion');
    expect(problem.errors[0].message).toContain('schema recursion too deep');
  });
});

describe('deeply nested metadata', () => {
  it('reports max_depth at every depth', async () => {
    // The body limit is MAX_METADATA_BYTES + 16 KiB, 86,384 bytes here, so 40,000 levels of "[]" fit.
    for (const depth of [150, 1_500, 5_000, 40_000]) {
      const metadata = `{"a":${'['.repeat(depth)}${']'.repeat(depth)}}`;
      const response = await api.request('POST', '/packages', {
        body: `{"name":"n","producer":"p","subject":"s","retention_class":"standard","metadata":${metadata}}`,
        headers: { 'content-type': 'application/json' },
      });
      expect(response.status, `depth ${depth}`).toBe(400);
      const problem = await problemOf(response);
      expect(problem.errors[0].rule, `depth ${depth}`).toBe('max_depth');
      expect(problem.errors[0].message).toBe('nests arrays and objects more than 100 levels deep.');
    }
  });
});

describe('metadata size limit', () => {
  it('sends MAX_METADATA_BYTES to the console', async () => {
    const signIn = await api.withToken(undefined).post('/session', { token: environment.adminToken });
    expect(signIn.status).toBe(201);
    expect((await signIn.json()).max_metadata_bytes).toBe(MAX_METADATA_BYTES);

    const cookie = (signIn.headers.get('set-cookie') ?? '').split(';')[0];
    const session = await api.withToken(undefined).get('/session', { headers: { cookie } });
    expect((await session.json()).max_metadata_bytes).toBe(MAX_METADATA_BYTES);
  });

  it('rejects metadata one byte over the limit', async () => {
    // {"blob":"…"} adds 11 bytes to the string.
    const atLimit = await api.post('/packages', packageBody(null, { blob: 'x'.repeat(MAX_METADATA_BYTES - 11) }));
    expect(atLimit.status).toBe(201);

    const over = await api.post('/packages', packageBody(null, { blob: 'x'.repeat(MAX_METADATA_BYTES - 10) }));
    expect(over.status).toBe(400);
    const problem = await problemOf(over);
    expect(problem.detail).toBe(`The metadata is ${MAX_METADATA_BYTES + 1} bytes; the limit is ${MAX_METADATA_BYTES}.`);
    expect(problem.errors[0].rule).toBe('max_bytes');
  });
});
