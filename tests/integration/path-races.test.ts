import { drizzle } from 'drizzle-orm/node-postgres';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as schema from '@/db/schema';
import type { Database } from '@/db/client';
import { getPackageWithPathObstacles } from '@/server/registry/path-checks';
import { ApiClient, problemOf } from '../support/client';
import { ON_POSTGRES } from '../support/database';
import { createTestEnvironment, startServer, type TestEnvironment, type TestServer } from '../support/server';

// Requests that target the same path, or a file and a directory of the same name, at the same moment.
// Each pair runs in separate transactions on separate connections, so only locking keeps one of the two
// from missing the other's uncommitted row. On the embedded database the server has one connection and
// the requests run one after the other.

const ROUNDS = 30;

let environment: TestEnvironment;
let server: TestServer;
let api: ApiClient;

beforeAll(async () => {
  environment = await createTestEnvironment({ SCRUB_INTERVAL_SECONDS: '0', SWEEP_INTERVAL_SECONDS: '0' });
  server = await startServer(environment);
  api = new ApiClient(server.url, environment.adminToken);
});

afterAll(async () => {
  await server?.stop();
  await environment?.cleanup();
});

function base64(value: string): string {
  return Buffer.from(value, 'utf8').toString('base64');
}

describe('concurrent requests for clashing paths', () => {
  it('stores a file or a directory, never both', async () => {
    const pkg = await api.createPackage({ name: 'file-or-directory' });
    for (let round = 0; round < ROUNDS; round += 1) {
      const [file, inside] = await Promise.all([api.putFile(pkg.id, `d${round}`, `file ${round}`), api.putFile(pkg.id, `d${round}/x`, `inside ${round}`)]);
      const statuses = [file.status, inside.status].sort();
      expect(statuses, `round ${round}`).toEqual([201, 409]);
      const rejected = file.status === 409 ? file : inside;
      expect((await problemOf(rejected)).path).toBe(rejected === file ? `d${round}` : `d${round}/x`);
    }

    const finalized = await api.post(`/packages/${pkg.id}/finalize`);
    expect(finalized.status).toBe(200);
    const paths = ((await (await api.get(`/packages/${pkg.id}/files?limit=1000`)).json()).files as { relative_path: string }[]).map((file) => file.relative_path);
    expect(paths).toHaveLength(ROUNDS);
    for (let round = 0; round < ROUNDS; round += 1) {
      expect(paths.filter((filePath) => filePath === `d${round}` || filePath === `d${round}/x`), `round ${round}`).toHaveLength(1);
    }
  });

  it('lets an upload or a PUT have a path, not both', async () => {
    const pkg = await api.createPackage({ name: 'upload-or-put' });
    for (let round = 0; round < ROUNDS; round += 1) {
      const relativePath = `both/${round}.bin`;
      const [created, put] = await Promise.all([
        api.request('POST', '/uploads', {
          headers: {
            'Tus-Resumable': '1.0.0',
            'Upload-Length': '4',
            'Upload-Metadata': `package_id ${base64(pkg.id)},relative_path ${base64(relativePath)}`,
          },
        }),
        api.putFile(pkg.id, relativePath, 'body'),
      ]);
      expect([created.status, put.status].sort(), `round ${round}`).toEqual([201, 409]);
    }

    // Each path has a file or an unfinished upload, which finalize lists, and never both.
    const files = ((await (await api.get(`/packages/${pkg.id}/files?limit=1000`)).json()).files as { relative_path: string }[]).map((file) => file.relative_path);
    const finalized = await api.post(`/packages/${pkg.id}/finalize`);
    const pendingPaths = finalized.status === 409 ? ((await problemOf(finalized)).unfinished_uploads ?? []).map((upload: { relative_path: string }) => upload.relative_path) : [];
    expect(files.length + pendingPaths.length).toBe(ROUNDS);
    for (const pendingPath of pendingPaths) expect(files).not.toContain(pendingPath);
  });

  it('treats unfinished uploads as files and directories', async () => {
    const pkg = await api.createPackage({ name: 'upload-clashes' });
    const createUpload = (relativePath: string) =>
      api.request('POST', '/uploads', {
        headers: { 'Tus-Resumable': '1.0.0', 'Upload-Length': '4', 'Upload-Metadata': `package_id ${base64(pkg.id)},relative_path ${base64(relativePath)}` },
      });
    expect((await createUpload('d')).status).toBe(201);
    expect((await createUpload('e/x')).status).toBe(201);

    const inside = await api.putFile(pkg.id, 'd/x', 'inside an upload');
    expect(inside.status).toBe(409);
    expect((await problemOf(inside)).conflicting_path).toBe('d');
    const above = await api.putFile(pkg.id, 'e', 'above an upload');
    expect(above.status).toBe(409);
    expect((await problemOf(above)).conflicting_path).toBe('e/x');
    const uploadInside = await createUpload('d/y');
    expect(uploadInside.status).toBe(409);
    expect((await problemOf(uploadInside)).conflicting_path).toBe('d');
    expect((await api.putFile(pkg.id, 'f/x', 'beside them')).status).toBe(201);
  });

  it.skipIf(!ON_POSTGRES)('rejects at once while a clashing path is locked', async () => {
    const pkg = await api.createPackage({ name: 'held-directory' });
    // A second connection holds the shared lock that a slow upload into big/ would hold. The key is the
    // one that server/registry/path-checks.ts derives for a path.
    const holder = new pg.Client({ connectionString: environment.env.DATABASE_URL });
    await holder.connect();
    try {
      await holder.query('BEGIN');
      await holder.query(`SELECT pg_advisory_xact_lock_shared(hashtextextended($1, 0))`, [`artifact-store:path:${pkg.id}/big`]);

      const file = await api.putFile(pkg.id, 'big', 'a file where a directory is in use');
      expect(file.status).toBe(409);
      expect((await problemOf(file)).detail).toContain('Another request is adding a file or upload');
      const inside = await api.putFile(pkg.id, 'big/other.bin', 'beside the held upload');
      expect(inside.status).toBe(201);
    } finally {
      await holder.query('ROLLBACK');
      await holder.end();
    }
    expect((await api.putFile(pkg.id, 'elsewhere', 'after the release')).status).toBe(201);
  });

  // A request that fails anyway must not hold the locks, or a concurrent request for a path below it
  // would fail as busy until the failing transaction ends.
  it.skipIf(!ON_POSTGRES)('takes no path lock for a path that is taken', async () => {
    const pkg = await api.createPackage({ name: 'no-lock-on-failure' });
    expect((await api.putFile(pkg.id, 'taken/inside.bin', 'makes taken a directory')).status).toBe(201);
    const client = new pg.Client({ connectionString: environment.env.DATABASE_URL });
    await client.connect();
    try {
      const db = drizzle(client, { schema }) as unknown as Database;
      await db.transaction(async (tx) => {
        const { pkg: row, obstacles } = await getPackageWithPathObstacles(tx, { packageId: pkg.id, relativePath: 'taken', lock: true });
        expect(row.status).toBe('open');
        expect(obstacles.clashingPath).toBe('taken/inside.bin');
        const { rows } = await client.query(`SELECT count(*)::int AS held FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid()`);
        expect(rows[0].held).toBe(0);

        const free = await getPackageWithPathObstacles(tx, { packageId: pkg.id, relativePath: 'free/file.bin', lock: true });
        expect(free.obstacles.pathBusy).toBe(false);
        const after = await client.query(`SELECT count(*)::int AS held FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid()`);
        // Shared on free, exclusive on free/file.bin.
        expect(after.rows[0].held).toBe(2);
      });
    } finally {
      await client.end();
    }
  });
});
