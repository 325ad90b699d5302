import { setTimeout as sleep } from 'node:timers/promises';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ApiClient, problemOf } from '../support/client';
import { ON_POSTGRES } from '../support/database';
import { createTestEnvironment, startServer, useRetentionClasses, type TestEnvironment, type TestServer } from '../support/server';

const PACKAGE = { name: 'build-7', producer: 'ci', subject: 'app@7.0.0', retention_class: 'standard' };
const SHORT_SECONDS = 1;

let environment: TestEnvironment;
let server: TestServer;
let admin: ApiClient;
let writer: ApiClient;

beforeAll(async () => {
  environment = await createTestEnvironment({ SWEEP_INTERVAL_SECONDS: '0' });
  useRetentionClasses(environment, [
    { class_id: 'short', default_duration_seconds: SHORT_SECONDS, deletion_strategy: 'delete' },
    { class_id: 'standard', default_duration_seconds: 365 * 24 * 3600, deletion_strategy: 'delete' },
  ]);
  const writerToken = await environment.createToken('idempotency-writer', ['read', 'write']);
  server = await startServer(environment);
  admin = new ApiClient(server.url, environment.adminToken);
  writer = admin.withToken(writerToken);
});

afterAll(async () => {
  await server?.stop();
  await environment?.cleanup();
});

/** POSTs a package with the given Idempotency-Key header value. */
function createWithKey(client: ApiClient, key: string, body: Record<string, unknown> = PACKAGE): Promise<Response> {
  return client.post('/packages', body, { headers: { 'Idempotency-Key': key } });
}

async function createdEventsOf(packageId: string): Promise<unknown[]> {
  const { events } = await admin.events(0, 0, `&subject_kind=package&subject_id=${packageId}`);
  return events.filter((event) => event.event_type === 'package.created');
}

describe('Idempotency-Key on POST /packages', () => {
  it('returns the first package to a repeat', async () => {
    const first = await createWithKey(admin, '"repeat-1"');
    expect(first.status).toBe(201);
    const created = await first.json();

    const repeated = await createWithKey(admin, '"repeat-1"');
    expect(repeated.status).toBe(201);
    expect(repeated.headers.get('location')).toBe(`/api/v1/packages/${created.id}`);
    expect((await repeated.json()).id).toBe(created.id);
    expect(await createdEventsOf(created.id)).toHaveLength(1);
  });

  it('creates a package per key', async () => {
    const first = await (await createWithKey(admin, '"distinct-1"')).json();
    const second = await (await createWithKey(admin, '"distinct-2"')).json();
    expect(second.id).not.toBe(first.id);
    const unkeyed = await (await admin.post('/packages', PACKAGE)).json();
    expect(unkeyed.id).not.toBe(first.id);
  });

  it('treats a bare key as the quoted one', async () => {
    const quoted = await (await createWithKey(admin, '"bare-and-quoted"')).json();
    const bare = await createWithKey(admin, 'bare-and-quoted');
    expect(bare.status).toBe(201);
    expect((await bare.json()).id).toBe(quoted.id);
  });

  it('unescapes a quoted key', async () => {
    const escaped = await (await createWithKey(admin, '"back\\\\slash \\"quote\\""')).json();
    // The same key, 'back\slash "quote"', cannot be sent bare, so a second escaped form shows the match.
    const again = await createWithKey(admin, '"back\\\\slash \\"quote\\""');
    expect((await again.json()).id).toBe(escaped.id);
    const other = await (await createWithKey(admin, '"back\\\\slash quote"')).json();
    expect(other.id).not.toBe(escaped.id);
  });

  it('rejects a reused key with another body', async () => {
    const created = await (await createWithKey(admin, '"reused-1"')).json();
    const response = await createWithKey(admin, '"reused-1"', { ...PACKAGE, name: 'build-8' });
    expect(response.status).toBe(422);
    const problem = await problemOf(response);
    expect(problem.package_id).toBe(created.id);
    expect(problem.detail).toContain('another request body');
  });

  it('matches a body with its defaults filled in', async () => {
    const created = await (await createWithKey(admin, '"defaults-1"')).json();
    const explicit = await createWithKey(admin, '"defaults-1"', { ...PACKAGE, metadata: {}, metadata_schema: null });
    expect(explicit.status).toBe(201);
    expect((await explicit.json()).id).toBe(created.id);
  });

  it('keeps the keys of callers apart', async () => {
    const byAdmin = await (await createWithKey(admin, '"shared-key"')).json();
    const byWriter = await createWithKey(writer, '"shared-key"', { ...PACKAGE, name: 'other-body' });
    expect(byWriter.status).toBe(201);
    const created = await byWriter.json();
    expect(created.id).not.toBe(byAdmin.id);
    expect(created.created_by).toBe('idempotency-writer');
  });

  it('returns 201 to parallel repeats', async () => {
    const created = await (await createWithKey(admin, '"parallel-repeat"')).json();
    const repeats = await Promise.all(Array.from({ length: 8 }, () => createWithKey(admin, '"parallel-repeat"')));
    expect(repeats.map((response) => response.status)).toEqual(Array(8).fill(201));
    const ids = await Promise.all(repeats.map(async (response) => (await response.json()).id));
    expect(new Set(ids)).toEqual(new Set([created.id]));
  });

  it('creates one package for parallel first requests', async () => {
    const body = { ...PACKAGE, name: 'parallel-first' };
    const responses = await Promise.all(Array.from({ length: 20 }, () => createWithKey(admin, '"parallel-first"', body)));
    const statuses = responses.map((response) => response.status);
    expect(statuses.filter((status) => status !== 201 && status !== 409)).toEqual([]);
    const created = responses.filter((response) => response.status === 201);
    const ids = new Set(await Promise.all(created.map(async (response) => (await response.json()).id)));
    expect(ids.size).toBe(1);
    const listed = (await (await admin.get('/packages?name=parallel-first')).json()).packages;
    expect(listed.map((pkg: { id: string }) => pkg.id)).toEqual([...ids]);
  });

  it('frees the key of a deleted package', async () => {
    const created = await (await createWithKey(admin, '"deleted-1"')).json();
    expect((await admin.request('DELETE', `/packages/${created.id}`)).status).toBe(204);
    const again = await createWithKey(admin, '"deleted-1"');
    expect(again.status).toBe(201);
    expect((await again.json()).id).not.toBe(created.id);
  });

  it('frees the key of a package the sweep deleted', async () => {
    const body = { ...PACKAGE, retention_class: 'short' };
    const created = await (await createWithKey(admin, '"swept-1"', body)).json();
    expect((await admin.post(`/packages/${created.id}/finalize`)).status).toBe(200);
    await sleep(SHORT_SECONDS * 1000 + 300);
    const sweep = await (await admin.post('/retention/sweep', { dry_run: false })).json();
    expect(sweep.deleted.map((deletion: { package_id: string }) => deletion.package_id)).toContain(created.id);

    const again = await createWithKey(admin, '"swept-1"', body);
    expect(again.status).toBe(201);
    const record = await again.json();
    expect(record.id).not.toBe(created.id);
    expect(record.status).toBe('open');
  });

  it.each([
    ['empty quotes', '""', 'length'],
    ['a missing closing quote', '"open', 'sf_string'],
    ['a space in a bare key', 'two words', 'sf_string'],
    ['a lone backslash', '"a\\b"', 'sf_string'],
    ['a parameter', '"key";a=1', 'sf_string'],
    ['a bare parameter', 'key;a=1', 'sf_string'],
    ['two joined bare keys', 'k1,k1', 'sf_string'],
    ['a no-break space', 'k1\u00a0', 'sf_string'],
    ['256 characters', `"${'k'.repeat(256)}"`, 'length'],
  ])('rejects %s', async (_case, value, rule) => {
    const response = await createWithKey(admin, value);
    expect(response.status).toBe(400);
    const problem = await problemOf(response);
    expect(problem.errors).toEqual([expect.objectContaining({ field: 'Idempotency-Key', rule })]);
  });

  it('accepts 255 characters', async () => {
    const response = await createWithKey(admin, `"${'k'.repeat(255)}"`);
    expect(response.status).toBe(201);
  });

  // PGlite serves one process, so only PostgreSQL lets the test hold the lock beside the server.
  it.skipIf(!ON_POSTGRES)('rejects a key in use with 409', async () => {
    const client = new pg.Client({ connectionString: environment.env.DATABASE_URL });
    await client.connect();
    try {
      await client.query('BEGIN');
      await client.query("SELECT pg_advisory_xact_lock(hashtextextended('artifact-store:idempotency-key:test-admin/in-use', 0))");
      const busy = await createWithKey(admin, '"in-use"');
      expect(busy.status).toBe(409);
      expect((await problemOf(busy)).detail).toContain('still being processed');
      await client.query('COMMIT');
    } finally {
      await client.end();
    }
    expect((await createWithKey(admin, '"in-use"')).status).toBe(201);
  });
});
