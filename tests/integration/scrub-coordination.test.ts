import crypto from 'node:crypto';
import path from 'node:path';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connectDatabase, type DatabaseConnection } from '@/db/client';
import { scrubStorage, type ScrubContext } from '@/server/integrity/scrub';
import { FilesystemBackend } from '@/server/storage/filesystem';
import { ApiClient } from '../support/client';
import { createTestEnvironment, startServer, type TestEnvironment } from '../support/server';

const ROOT = path.resolve(import.meta.dirname, '../..');
const MiB = 1024 * 1024;
const BLOB_COUNT = 4;

let environment: TestEnvironment;
let connection: DatabaseConnection;
let context: ScrubContext;

beforeAll(async () => {
  environment = await createTestEnvironment({ SCRUB_INTERVAL_SECONDS: '0', SWEEP_INTERVAL_SECONDS: '0' });
  // The server stores the blobs and stops before the test opens the database, because PGlite allows one process.
  const server = await startServer(environment);
  const api = new ApiClient(server.url, environment.adminToken);
  const pkg = await api.createPackage({ name: 'scrub-coordination' });
  for (let index = 0; index < BLOB_COUNT; index += 1) {
    expect((await api.putFile(pkg.id, `part-${index}.bin`, new Uint8Array(crypto.randomBytes(MiB)))).status).toBe(201);
  }
  await server.stop();

  connection = await connectDatabase({
    databaseUrl: environment.env.DATABASE_URL,
    pgliteDir: path.join(environment.env.DATA_DIR, 'pglite'),
    migrationsFolder: path.join(ROOT, 'db/migrations'),
  });
  context = {
    db: connection.db,
    connection,
    backends: new Map([['fs-primary', new FilesystemBackend({ id: 'fs-primary', root: environment.storageRoot })]]),
    log: pino({ level: 'silent' }),
    // 4 MB/s makes each 1 MiB blob take about a quarter of a second, so two runs started together overlap.
    rateBytesPerSecond: 4_000_000,
  };
});

afterAll(async () => {
  await connection?.close();
  await environment?.cleanup();
});

describe('scrub coordination', () => {
  it('two runs at once split the blobs', async () => {
    const reports = await Promise.all([scrubStorage(context, { actor: 'test-a' }), scrubStorage(context, { actor: 'test-b' })]);

    expect(reports[0].checked + reports[1].checked).toBe(BLOB_COUNT);
    expect(reports[0].blobs_already_verified + reports[1].blobs_already_verified).toBe(BLOB_COUNT);
    expect(reports[0].bytes_read + reports[1].bytes_read).toBe(BLOB_COUNT * MiB);
  });

  it('later run checks every copy again', async () => {
    const report = await scrubStorage(context, { actor: 'test-later' });

    expect(report.checked).toBe(BLOB_COUNT);
    expect(report.blobs_already_verified).toBe(0);
  });

  it('scheduled run skips copies verified within its period', async () => {
    const report = await scrubStorage(context, { actor: 'test-scheduled', skipVerifiedWithinSeconds: 3600 });

    expect(report.checked).toBe(0);
    expect(report.bytes_read).toBe(0);
    expect(report.blobs_already_verified).toBe(BLOB_COUNT);
  });
});
