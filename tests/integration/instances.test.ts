import { execFile } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { promisify } from 'node:util';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connectDatabase } from '@/db/client';
import { blake3Hex } from '@/server/digest/blake3-hex';
import { ApiClient } from '../support/client';
import { createTestDatabase, ON_POSTGRES } from '../support/database';
import { createTestEnvironment, startServer, useRetentionClasses, type TestEnvironment, type TestServer } from '../support/server';
import { checkAlternatingUpload, errorLines, eventsOf } from '../support/instances';
import { createTusUpload } from '../support/tus';

const ROOT = path.resolve(import.meta.dirname, '../..');
const MiB = 1024 * 1024;
const SHORT_SECONDS = 2;
const runFile = promisify(execFile);

// Every case runs two server processes on one database. PGlite is an embedded database that only one
// process can open, so these cases need PostgreSQL (TEST_DATABASE_URL).
describe.skipIf(!ON_POSTGRES)('two instances on one database and store', () => {
  let environment: TestEnvironment;
  let serverA: TestServer;
  let serverB: TestServer;
  let apiA: ApiClient;
  let apiB: ApiClient;

  beforeAll(async () => {
    // The scrub rate is low so that two scrubs of one package overlap.
    environment = await createTestEnvironment({ SWEEP_INTERVAL_SECONDS: '0', SCRUB_INTERVAL_SECONDS: '0', SCRUB_RATE_MB_PER_S: '2' });
    useRetentionClasses(environment, [
      { class_id: 'short', default_duration_seconds: SHORT_SECONDS, deletion_strategy: 'delete' },
      { class_id: 'standard', default_duration_seconds: 365 * 24 * 3600, deletion_strategy: 'delete' },
    ]);
    [serverA, serverB] = await Promise.all([startServer(environment), startServer(environment)]);
    apiA = new ApiClient(serverA.url, environment.adminToken);
    apiB = new ApiClient(serverB.url, environment.adminToken);
  });

  afterAll(async () => {
    await Promise.all([serverA?.stop(), serverB?.stop()]);
    await environment?.cleanup();
  });

  /** Asserts that neither server logged an error or a fatal line so far. */
  function expectNoServerErrors(): void {
    expect(errorLines(serverA.output())).toEqual([]);
    expect(errorLines(serverB.output())).toEqual([]);
  }

  /** Creates a package through `api`, adds each file with PUT and finalizes it. */
  async function finalizedPackage(api: ApiClient, retentionClass: string, contents: Record<string, Buffer>): Promise<Record<string, any>> {
    const pkg = await api.createPackage({ retention_class: retentionClass });
    for (const [relativePath, bytes] of Object.entries(contents)) {
      expect((await api.putFile(pkg.id, relativePath, new Uint8Array(bytes))).status).toBe(201);
    }
    const finalized = await api.post(`/packages/${pkg.id}/finalize`);
    expect(finalized.status).toBe(200);
    return finalized.json();
  }

  it('tus PATCH alternating instances keeps digests', { timeout: 300_000 }, async () => {
    await checkAlternatingUpload([apiA, apiB], environment.dir);

    // Each PATCH after the first lands on the instance that did not take the previous one, so each
    // rebuilds the hash state from the staging file instead of using a state it does not have.
    expect(serverB.output()).toContain('rebuilt upload hash state from the staging file');
    expectNoServerErrors();
  });

  it('long poll on A wakes on a change through B', async () => {
    const client = new pg.Client({ connectionString: environment.env.DATABASE_URL });
    await client.connect();
    const head = Number((await client.query<{ sequence: string }>('SELECT sequence FROM event_log_head WHERE id = 1')).rows[0].sequence);
    await client.end();

    const poll = apiA.events(head, 20);
    // The poll is parked on A before the change, so only a notification can end it with an event.
    await sleep(500);
    const changedAt = performance.now();
    const pkg = await apiB.createPackage({ name: 'long-poll' });
    const feed = await poll;
    const elapsedMs = performance.now() - changedAt;

    expect(feed.events.map((event) => event.subject_id)).toContain(pkg.id);
    expect(feed.events[0].sequence).toBe(head + 1);
    // The delay is printed because tests assert no times. A wake-up by the 20 s timeout would return no events.
    console.info(`long poll on A returned ${elapsedMs.toFixed(0)} ms after the change through B`);
  });

  it('SSE stream on A receives an event made through B', async () => {
    const client = new pg.Client({ connectionString: environment.env.DATABASE_URL });
    await client.connect();
    const head = Number((await client.query<{ sequence: string }>('SELECT sequence FROM event_log_head WHERE id = 1')).rows[0].sequence);
    await client.end();

    const controller = new AbortController();
    const stream = await apiA.get(`/events/stream?since=${head}`, { signal: controller.signal });
    expect(stream.status).toBe(200);
    expect(stream.headers.get('content-type')).toContain('text/event-stream');
    const reader = stream.body!.getReader();
    const decoder = new TextDecoder();
    let text = '';
    // The first bytes are the stream's preamble; after them the stream waits for new events.
    text += decoder.decode((await reader.read()).value);

    const pkg = await apiB.createPackage({ name: 'sse' });
    while (!text.includes(pkg.id)) {
      const { value, done } = await reader.read();
      if (done) break;
      text += decoder.decode(value, { stream: true });
    }
    controller.abort();

    const messages = text.split('\n\n').filter((block) => block.includes('data: '));
    const created = messages.map((block) => JSON.parse(block.slice(block.indexOf('data: ') + 6))).find((event) => event.subject_id === pkg.id);
    expect(created).toMatchObject({ event_type: 'package.created', subject_kind: 'package', sequence: head + 1 });
  });

  it('sweep on both instances deletes each package once', async () => {
    const created = [];
    for (let index = 0; index < 6; index += 1) {
      const content = crypto.randomBytes(1024);
      created.push({ pkg: await finalizedPackage(index % 2 === 0 ? apiA : apiB, 'short', { 'data.bin': content }), content });
    }
    await sleep(SHORT_SECONDS * 1000 + 300);

    const responses = await Promise.all([apiA.post('/retention/sweep', { dry_run: false }), apiB.post('/retention/sweep', { dry_run: false })]);
    for (const response of responses) expect(response.status).toBe(200);
    const reports = await Promise.all(responses.map((response) => response.json()));
    const deleted = reports.flatMap((report) => report.deleted.map((item: any) => item.package_id));
    expect(deleted.sort()).toEqual(created.map((item) => item.pkg.id).sort());

    for (const { pkg, content } of created) {
      expect(await eventsOf(apiA, 'package.deleted_by_retention', pkg.id)).toHaveLength(1);
      const tombstone = await (await apiB.get(`/packages/${pkg.id}`)).json();
      expect(tombstone.status).toBe('deleted');
      expect(tombstone.deleted_at).not.toBeNull();
      expect(tombstone.manifest_digest).toBe(pkg.manifest_digest);
      const files = await (await apiA.get(`/packages/${pkg.id}/files`)).json();
      expect(files.files.map((file: any) => file.relative_path)).toEqual(['data.bin']);
      const hex = blake3Hex(content);
      expect(fs.existsSync(path.join(environment.storageRoot, 'blake3', hex.slice(0, 2), hex.slice(2, 4), hex))).toBe(false);
    }
    const removedBlobs = reports.flatMap((report) => report.blobs_removed.map((blob: any) => blob.content_address));
    expect(new Set(removedBlobs).size).toBe(removedBlobs.length);
    expectNoServerErrors();
  });

  it('scrub on both instances reads each copy once', { timeout: 180_000 }, async () => {
    // An open package has no manifests, so every blob takes about half a second at 2 MB/s and the two
    // runs overlap even when one starts a little after the other.
    const pkg = await apiA.createPackage({ name: 'scrubbed-twice' });
    const contents = Array.from({ length: 6 }, () => crypto.randomBytes(MiB));
    for (const [index, bytes] of contents.entries()) expect((await apiA.putFile(pkg.id, `part-${index}.bin`, new Uint8Array(bytes))).status).toBe(201);
    const blobCount = contents.length;
    const totalBytes = contents.reduce((sum, bytes) => sum + bytes.length, 0);

    const responses = await Promise.all([apiA.post('/scrub', { package_id: pkg.id }), apiB.post('/scrub', { package_id: pkg.id })]);
    for (const response of responses) expect(response.status).toBe(200);
    const [reportA, reportB] = await Promise.all(responses.map((response) => response.json()));

    // Each blob has one copy, and exactly one of the two runs read it while the other left it alone.
    expect(reportA.checked + reportB.checked).toBe(blobCount);
    expect(reportA.ok + reportB.ok).toBe(blobCount);
    expect(reportA.bytes_read + reportB.bytes_read).toBe(totalBytes);
    expect(reportA.blobs_already_verified + reportB.blobs_already_verified).toBe(blobCount);
    for (const report of [reportA, reportB]) {
      expect(report.corrupt).toEqual([]);
      expect(report.missing).toEqual([]);
      expect(report.skipped).toEqual([]);
    }
    expectNoServerErrors();
  });

  it('session cookie from A works on B until sign-out', async () => {
    const signIn = await apiA.withToken(undefined).post('/session', { token: environment.adminToken });
    expect(signIn.status).toBe(201);
    const cookie = (signIn.headers.get('set-cookie') ?? '').split(';')[0];
    expect(cookie).toMatch(/^as_session=/);

    const anonymousA = apiA.withToken(undefined);
    const anonymousB = apiB.withToken(undefined);
    const me = await anonymousB.get('/session', { headers: { cookie } });
    expect(me.status).toBe(200);
    expect((await me.json()).name).toBe('test-admin');
    expect((await anonymousB.get('/packages', { headers: { cookie } })).status).toBe(200);

    expect((await anonymousA.request('DELETE', '/session', { headers: { cookie } })).status).toBe(204);
    expect((await anonymousB.get('/packages', { headers: { cookie } })).status).toBe(401);
  });

  // Runs last in this group because it kills instance A.
  it('instance killed mid-PATCH, upload resumes on B', { timeout: 180_000 }, async () => {
    const content = crypto.randomBytes(8 * MiB);
    const sentBeforeKill = 2 * MiB;
    const packageId = (await apiA.createPackage({ name: 'killed-mid-patch' })).id;
    const uploadPath = await createTusUpload(apiA, packageId, 'killed.bin', content.length);
    const stagingFile = path.join(environment.storageRoot, 'uploads', uploadPath.split('/').pop()!);

    // The body sends its first 2 MiB and then stalls, so A is killed while it holds the upload's lock.
    let sent = 0;
    const stalled = new ReadableStream<Uint8Array>({
      async pull(stream) {
        if (sent >= sentBeforeKill) return new Promise<void>(() => undefined);
        stream.enqueue(new Uint8Array(content.subarray(sent, sent + 256 * 1024)));
        sent += 256 * 1024;
      },
    });
    const patchOnA = fetch(apiA.url(uploadPath), {
      method: 'PATCH',
      headers: {
        authorization: `Bearer ${environment.adminToken}`,
        'Tus-Resumable': '1.0.0',
        'Upload-Offset': '0',
        'Content-Type': 'application/offset+octet-stream',
        'Content-Length': String(content.length),
      },
      body: stalled,
      duplex: 'half',
    } as RequestInit).catch((error: unknown) => error);
    while (!fs.existsSync(stagingFile) || fs.statSync(stagingFile).size < sentBeforeKill) await sleep(50);
    await serverA.kill();
    expect(await patchOnA).toBeInstanceOf(Error);

    const head = await apiB.request('HEAD', uploadPath, { headers: { 'Tus-Resumable': '1.0.0' } });
    expect(head.status).toBe(200);
    const offset = Number(head.headers.get('upload-offset'));
    expect(offset).toBe(sentBeforeKill);
    // A's advisory lock ended with its database connection, so B takes the upload without a 423.
    const rest = await apiB.request('PATCH', uploadPath, {
      headers: { 'Tus-Resumable': '1.0.0', 'Upload-Offset': String(offset), 'Content-Type': 'application/offset+octet-stream' },
      body: new Uint8Array(content.subarray(offset)),
    });
    expect(rest.status).toBe(204);

    const listed = await (await apiB.get(`/packages/${packageId}/files`)).json();
    expect(listed.files).toHaveLength(1);
    expect(listed.files[0].digest_primary_hex).toBe(blake3Hex(content));
    expect(listed.files[0].digest_sha256_hex).toBe(crypto.createHash('sha256').update(content).digest('hex'));
    expect(await eventsOf(apiB, 'upload.completed', uploadPath.split('/').pop()!)).toHaveLength(1);
    expect(errorLines(serverB.output())).toEqual([]);
  });
});

describe.skipIf(!ON_POSTGRES)('migrations with several instances', () => {
  const cleanups: (() => Promise<void>)[] = [];

  afterAll(async () => {
    for (const cleanup of cleanups.reverse()) await cleanup();
  });

  /** Creates an environment on a new database that no migration has touched yet. */
  async function emptyEnvironment(): Promise<TestEnvironment> {
    const database = await createTestDatabase();
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'artifact-store-migrate-'));
    cleanups.push(async () => {
      await database.drop();
      fs.rmSync(dir, { recursive: true, force: true });
    });
    return {
      dir,
      storageRoot: path.join(dir, 'blobs'),
      env: { DATA_DIR: path.join(dir, 'data'), STORAGE_ROOT: path.join(dir, 'blobs'), LOG_LEVEL: 'info', DATABASE_URL: database.url },
      // No token: these cases only start servers and read /health, which needs none.
      adminToken: '',
      createToken: () => Promise.reject(new Error('this environment has no tokens')),
      cleanup: async () => undefined,
    };
  }

  async function appliedMigrations(databaseUrl: string): Promise<number> {
    const client = new pg.Client({ connectionString: databaseUrl });
    await client.connect();
    try {
      return Number((await client.query<{ count: string }>('SELECT count(*) AS count FROM drizzle.__drizzle_migrations')).rows[0].count);
    } finally {
      await client.end();
    }
  }

  const journalEntries = JSON.parse(fs.readFileSync(path.join(ROOT, 'db/migrations/meta/_journal.json'), 'utf8')).entries.length;

  it('four connections migrating at once', async () => {
    const environment = await emptyEnvironment();
    const connect = () =>
      connectDatabase({
        databaseUrl: environment.env.DATABASE_URL,
        pgliteDir: path.join(environment.dir, 'unused-pglite'),
        migrationsFolder: path.join(ROOT, 'db/migrations'),
      });
    // Started in one process, the four migrations overlap, which two server processes starting at once may not.
    const results = await Promise.allSettled([connect(), connect(), connect(), connect()]);
    for (const result of results) if (result.status === 'fulfilled') await result.value.close();

    expect(results.map((result) => (result.status === 'rejected' ? String(result.reason) : 'connected'))).toEqual(Array(4).fill('connected'));
    expect(await appliedMigrations(environment.env.DATABASE_URL)).toBe(journalEntries);
  });

  it('two instances starting on an empty database', async () => {
    const environment = await emptyEnvironment();
    const servers = await Promise.all([startServer(environment), startServer(environment)]);
    try {
      for (const server of servers) {
        const health = await fetch(`${server.url}/api/v1/health`);
        expect(health.status).toBe(200);
        expect(errorLines(server.output())).toEqual([]);
      }
      expect(await appliedMigrations(environment.env.DATABASE_URL)).toBe(journalEntries);
    } finally {
      await Promise.all(servers.map((server) => server.stop()));
    }
  });

  it('npm run migrate twice at once, then start', async () => {
    const environment = await emptyEnvironment();
    const migrate = () =>
      runFile(process.execPath, [path.join(ROOT, 'node_modules/tsx/dist/cli.mjs'), 'scripts/migrate.ts'], {
        cwd: ROOT,
        env: { ...process.env, ...environment.env },
        timeout: 60_000,
      });
    const results = await Promise.all([migrate(), migrate()]);
    for (const result of results) expect(result.stdout).toContain(`The postgres database has ${journalEntries} migrations applied.`);
    expect(await appliedMigrations(environment.env.DATABASE_URL)).toBe(journalEntries);

    const server = await startServer(environment);
    try {
      expect((await fetch(`${server.url}/api/v1/health`)).status).toBe(200);
      expect(await appliedMigrations(environment.env.DATABASE_URL)).toBe(journalEntries);
    } finally {
      await server.stop();
    }
  });
});
