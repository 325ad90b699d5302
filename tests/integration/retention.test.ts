import { spawn } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sql } from 'drizzle-orm';
import { connectDatabase } from '@/db/client';
import { blake3Hex } from '@/server/digest/blake3-hex';
import { decodeCbor } from '@/server/encoding/cbor';
import { canonicalJson } from '@/server/encoding/jcs';
import { ApiClient, problemOf } from '../support/client';
import { ON_POSTGRES } from '../support/database';
import { createTestEnvironment, startServer, useRetentionClasses, type TestEnvironment, type TestServer } from '../support/server';

const ROOT = path.resolve(import.meta.dirname, '../..');
const SHORT_SECONDS = 2;

let environment: TestEnvironment;
let server: TestServer;
let api: ApiClient;
let writerApi: ApiClient;

beforeAll(async () => {
  environment = await createTestEnvironment({ SWEEP_INTERVAL_SECONDS: '0', ORPHAN_SAFETY_WINDOW_SECONDS: '60' });
  useRetentionClasses(environment, [
    { class_id: 'short', default_duration_seconds: SHORT_SECONDS, deletion_strategy: 'delete' },
    { class_id: 'standard', default_duration_seconds: 365 * 24 * 3600, deletion_strategy: 'delete' },
    { class_id: 'permanent', default_duration_seconds: null, deletion_strategy: 'delete' },
  ]);
  const writerToken = await environment.createToken('writer-only', ['read', 'write']);
  server = await startServer(environment);
  api = new ApiClient(server.url, environment.adminToken);
  writerApi = api.withToken(writerToken);
});

afterAll(async () => {
  await server?.stop();
  await environment?.cleanup();
});

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Creates a package of the given class with the given files and finalizes it; returns the package and its file ids. */
async function finalizedPackage(retentionClass: string, contents: Record<string, Buffer>) {
  const pkg = await api.createPackage({ retention_class: retentionClass });
  const fileIds: Record<string, string> = {};
  for (const [relativePath, bytes] of Object.entries(contents)) {
    const put = await api.putFile(pkg.id, relativePath, new Uint8Array(bytes));
    expect(put.status).toBe(201);
    fileIds[relativePath] = (await put.json()).id;
  }
  const finalized = await api.post(`/packages/${pkg.id}/finalize`);
  expect(finalized.status).toBe(200);
  return { pkg: await finalized.json(), fileIds };
}

/** Waits until every short package created so far has expired. */
const waitForShortExpiry = () => sleep(SHORT_SECONDS * 1000 + 300);

async function sweep(dryRun = false): Promise<Record<string, any>> {
  const response = await api.post('/retention/sweep', { dry_run: dryRun });
  expect(response.status).toBe(200);
  return response.json();
}

async function retentionState(packageId: string): Promise<Record<string, any>> {
  const response = await api.get(`/packages/${packageId}/retention`);
  expect(response.status).toBe(200);
  return response.json();
}

async function deletionEvents(packageId: string): Promise<any[]> {
  const feed = await api.events(0, 0, `&subject_id=${packageId}&event_type=package.deleted_by_retention`);
  return feed.events;
}

function objectPath(bytes: Buffer): string {
  const hex = blake3Hex(bytes);
  return path.join(environment.storageRoot, 'blake3', hex.slice(0, 2), hex.slice(2, 4), hex);
}

describe('holds and sweeps', () => {
  it('keeps a held package past expiry and deletes it after the last release', async () => {
    const content = crypto.randomBytes(4096);
    const { pkg, fileIds } = await finalizedPackage('short', { 'data.bin': content });
    const first = await api.post(`/packages/${pkg.id}/retention/holds`, { reason: 'legal review' });
    expect(first.status).toBe(201);
    const firstHold = await first.json();
    expect(firstHold.actor).toBe('test-admin');
    const second = await api.post(`/packages/${pkg.id}/retention/holds`, { reason: 'incident 7' });
    expect(second.status).toBe(201);
    const secondHold = await second.json();
    await waitForShortExpiry();

    const held = await retentionState(pkg.id);
    expect(held.eligible_for_deletion).toBe(false);
    expect(held.active_holds.map((hold: any) => hold.hold_id)).toEqual([firstHold.hold_id, secondHold.hold_id]);
    expect(held.active_hold_id).toBe(secondHold.hold_id);
    expect(held.reasons).toEqual([`held by holds ${firstHold.hold_id}, ${secondHold.hold_id}`]);
    expect((await sweep()).deleted.map((item: any) => item.package_id)).not.toContain(pkg.id);

    const releaseFirst = await api.post(`/packages/${pkg.id}/retention/holds/${firstHold.hold_id}/release`, { reason: 'review done' });
    expect(releaseFirst.status).toBe(200);
    expect((await sweep()).deleted.map((item: any) => item.package_id)).not.toContain(pkg.id);
    expect((await retentionState(pkg.id)).active_hold_id).toBe(secondHold.hold_id);

    const releaseSecond = await api.post(`/packages/${pkg.id}/retention/holds/${secondHold.hold_id}/release`, { reason: 'closed' });
    expect(releaseSecond.status).toBe(200);
    const again = await api.post(`/packages/${pkg.id}/retention/holds/${secondHold.hold_id}/release`, { reason: 'closed' });
    expect(again.status).toBe(409);
    expect((await problemOf(again)).hold_id).toBe(secondHold.hold_id);
    const eligible = await retentionState(pkg.id);
    expect(eligible.eligible_for_deletion).toBe(true);
    expect(eligible.reasons).toEqual([`expired at ${pkg.expires_at} with no active hold`]);

    const report = await sweep();
    const deletion = report.deleted.find((item: any) => item.package_id === pkg.id);
    expect(deletion).toMatchObject({ deletion_strategy: 'delete', manifest_digest: pkg.manifest_digest, file_count: 1 });
    expect(report.blobs_removed.map((blob: any) => blob.content_address)).toContain(`blake3:${blake3Hex(content)}`);
    expect(fs.existsSync(objectPath(content))).toBe(false);

    const tombstone = await (await api.get(`/packages/${pkg.id}`)).json();
    expect(tombstone.status).toBe('deleted');
    expect(tombstone.manifest_digest).toBe(pkg.manifest_digest);
    expect(tombstone.deleted_at).not.toBeNull();
    const files = await (await api.get(`/packages/${pkg.id}/files`)).json();
    expect(files.files.map((file: any) => file.relative_path)).toEqual(['data.bin']);
    const manifest = await api.get(`/packages/${pkg.id}/manifest`);
    expect(manifest.status).toBe(200);
    expect(`blake3:${blake3Hex(new Uint8Array(await manifest.arrayBuffer()))}`).toBe(pkg.manifest_digest);

    const download = await api.get(`/files/${fileIds['data.bin']}/download`);
    expect(download.status).toBe(410);
    expect((await problemOf(download)).status).toBe(410);

    const deletedState = await retentionState(pkg.id);
    expect(deletedState.reasons).toEqual(['already deleted']);
    const history = await (await api.get(`/packages/${pkg.id}/retention/history`)).json();
    expect(history.events.map((event: any) => event.event_type)).toEqual([
      'package.created',
      'package.finalized',
      'retention.hold_applied',
      'retention.hold_applied',
      'retention.hold_released',
      'retention.hold_released',
      'package.deleted_by_retention',
    ]);
    expect(await deletionEvents(pkg.id)).toHaveLength(1);
    expect((await sweep()).deleted.map((item: any) => item.package_id)).not.toContain(pkg.id);
    expect(await deletionEvents(pkg.id)).toHaveLength(1);
  });

  it('rejects holds on a deleted package and unknown hold ids', async () => {
    const { pkg } = await finalizedPackage('short', { 'a.txt': crypto.randomBytes(64) });
    const other = await api.createPackage();
    const otherHold = await (await api.post(`/packages/${other.id}/retention/holds`, { reason: 'open packages accept holds' })).json();
    expect(otherHold.package_id).toBe(other.id);

    const foreign = await api.post(`/packages/${pkg.id}/retention/holds/${otherHold.hold_id}/release`, { reason: 'x' });
    expect(foreign.status).toBe(404);
    const unknown = await api.post(`/packages/${pkg.id}/retention/holds/${crypto.randomUUID()}/release`, { reason: 'x' });
    expect(unknown.status).toBe(404);
    const noReason = await api.post(`/packages/${pkg.id}/retention/holds`, { reason: '  ' });
    expect(noReason.status).toBe(400);

    await waitForShortExpiry();
    await sweep();
    const late = await api.post(`/packages/${pkg.id}/retention/holds`, { reason: 'too late' });
    expect(late.status).toBe(409);
  });

  it('keeps shared content for the package that still references it', async () => {
    const shared = crypto.randomBytes(10_000);
    const doomed = await finalizedPackage('short', { 'shared.bin': shared });
    const kept = await finalizedPackage('short', { 'copy/shared.bin': shared });
    expect((await api.post(`/packages/${kept.pkg.id}/retention/holds`, { reason: 'keep' })).status).toBe(201);
    await waitForShortExpiry();

    const report = await sweep();
    expect(report.deleted.map((item: any) => item.package_id)).toContain(doomed.pkg.id);
    expect(report.deleted.map((item: any) => item.package_id)).not.toContain(kept.pkg.id);
    expect(report.blobs_removed.map((blob: any) => blob.content_address)).not.toContain(`blake3:${blake3Hex(shared)}`);

    const download = await api.get(`/files/${kept.fileIds['copy/shared.bin']}/download`);
    expect(download.status).toBe(200);
    expect(Buffer.from(await download.arrayBuffer()).equals(shared)).toBe(true);
    expect((await api.get(`/files/${doomed.fileIds['shared.bin']}/download`)).status).toBe(410);
  });

  it('dry run lists exactly what the next sweep deletes', async () => {
    await sweep();
    const first = await finalizedPackage('short', { 'one.bin': crypto.randomBytes(128) });
    const second = await finalizedPackage('short', { 'two.bin': crypto.randomBytes(128) });
    const held = await finalizedPackage('short', { 'three.bin': crypto.randomBytes(128) });
    await api.post(`/packages/${held.pkg.id}/retention/holds`, { reason: 'keep' });
    await waitForShortExpiry();

    const dryRun = await sweep(true);
    const preview = await (await api.get('/retention/preview')).json();
    const expected = [first.pkg.id, second.pkg.id].sort();
    expect(dryRun.would_delete.map((item: any) => item.package_id).sort()).toEqual(expected);
    expect(preview.would_delete.map((item: any) => item.package_id).sort()).toEqual(expected);
    expect(dryRun.deleted).toEqual([]);
    expect((await retentionState(first.pkg.id)).status).toBe('finalized');
    expect(await deletionEvents(first.pkg.id)).toHaveLength(0);

    const real = await sweep();
    expect(real.deleted.map((item: any) => item.package_id).sort()).toEqual(expected);
  });

  it('deletes each package once when two sweeps run at once', async () => {
    const created = [];
    for (let index = 0; index < 4; index += 1) created.push(await finalizedPackage('short', { [`f${index}.bin`]: crypto.randomBytes(256) }));
    await waitForShortExpiry();

    const reports = await Promise.all([sweep(), sweep()]);
    const deleted = reports.flatMap((report) => report.deleted.map((item: any) => item.package_id));
    expect(deleted.sort()).toEqual(created.map((item) => item.pkg.id).sort());
    for (const item of created) expect(await deletionEvents(item.pkg.id)).toHaveLength(1);
  });

  // On PostgreSQL both command-line sweeps run beside the server. PGlite is one process's database, so
  // there the server is stopped first and at most one of the two commands may open it; the other must
  // stop with the lock message.
  it('deletes each package once when two CLI sweeps run at once', async () => {
    const created = [];
    for (let index = 0; index < 4; index += 1) created.push(await finalizedPackage('short', { [`cli${index}.bin`]: crypto.randomBytes(256) }));
    await waitForShortExpiry();

    if (!ON_POSTGRES) await server.stop();
    const results = await Promise.all([runSweepCli(), runSweepCli()]);
    if (!ON_POSTGRES) await restartServer();

    const refused = results.filter((result) => result.code !== 0);
    for (const result of refused) expect(result.stderr).toContain('is in use by process');
    expect(refused.length).toBeLessThanOrEqual(ON_POSTGRES ? 0 : 1);
    const deleted = results.filter((result) => result.code === 0).flatMap((result) => result.report.deleted.map((item: any) => item.package_id));
    expect(deleted.sort()).toEqual(created.map((item) => item.pkg.id).sort());
    for (const item of created) expect(await deletionEvents(item.pkg.id)).toHaveLength(1);
  });

  it('leaves nothing half-deleted after a sweep killed with SIGKILL', { timeout: 180_000 }, async () => {
    const created: { id: string; fileId: string; content: Buffer }[] = [];
    for (let index = 0; index < 40; index += 1) {
      const content = crypto.randomBytes(1024);
      const { pkg, fileIds } = await finalizedPackage('short', { 'doomed.bin': content });
      created.push({ id: pkg.id, fileId: fileIds['doomed.bin'], content });
    }
    await waitForShortExpiry();

    // The CLI logs each deletion at info level; it is killed as soon as the first one appears. It runs
    // in this node process through tsx's loader, because the tsx command would run it in a child
    // process that the signal does not reach.
    if (!ON_POSTGRES) await server.stop();
    const child = spawn(process.execPath, ['--import', 'tsx', 'scripts/retention.ts', 'sweep'], {
      cwd: ROOT,
      env: { ...process.env, ...environment.env, LOG_LEVEL: 'info' },
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    child.stderr.on('data', (chunk: Buffer) => {
      if (chunk.toString('utf8').includes('retention deleted a package')) child.kill('SIGKILL');
    });
    const signal = await new Promise<NodeJS.Signals | null>((resolve) => child.once('exit', (_code, exitSignal) => resolve(exitSignal)));
    expect(signal).toBe('SIGKILL');
    if (!ON_POSTGRES) await restartServer();

    // Every package is either deleted with its tombstone and event, or untouched and still downloadable.
    let deletedByKilledSweep = 0;
    for (const item of created) {
      const response = await api.get(`/packages/${item.id}`);
      expect(response.status).toBe(200);
      const status = (await response.json()).status;
      expect(['deleted', 'finalized']).toContain(status);
      const download = await api.get(`/files/${item.fileId}/download`);
      if (status === 'deleted') {
        deletedByKilledSweep += 1;
        expect(download.status).toBe(410);
        await download.arrayBuffer();
        expect(await deletionEvents(item.id)).toHaveLength(1);
      } else {
        expect(download.status).toBe(200);
        expect(Buffer.from(await download.arrayBuffer()).equals(item.content)).toBe(true);
        expect(await deletionEvents(item.id)).toHaveLength(0);
      }
    }
    expect(deletedByKilledSweep).toBeGreaterThanOrEqual(1);
    expect(deletedByKilledSweep).toBeLessThan(created.length);

    // The next sweep finishes the work: every package deleted once and every object gone.
    await sweep();
    for (const item of created) {
      const response = await api.get(`/packages/${item.id}`);
      expect((await response.json()).status).toBe('deleted');
      expect(await deletionEvents(item.id)).toHaveLength(1);
      expect(fs.existsSync(objectPath(item.content))).toBe(false);
    }
  });

  it('removes the content of a package marked deleted by an interrupted sweep', async () => {
    const content = crypto.randomBytes(2048);
    const { pkg } = await finalizedPackage('standard', { 'left.bin': content });
    // The state a sweep killed after marking the package deleted and before removing content leaves.
    const markDeleted = sql`UPDATE packages SET status = 'deleted', deleted_at = now() WHERE id = ${pkg.id}`;
    if (ON_POSTGRES) {
      const connection = await connectDatabase({ databaseUrl: environment.env.DATABASE_URL, pgliteDir: '' });
      await connection.db.execute(markDeleted);
      await connection.close();
    } else {
      await server.stop();
      const connection = await connectDatabase({ pgliteDir: path.join(environment.env.DATA_DIR, 'pglite') });
      await connection.db.execute(markDeleted);
      await connection.close();
      await restartServer();
    }
    expect(fs.existsSync(objectPath(content))).toBe(true);

    const report = await sweep();
    expect(report.blobs_removed.map((blob: any) => blob.content_address)).toContain(`blake3:${blake3Hex(content)}`);
    expect(fs.existsSync(objectPath(content))).toBe(false);
  });

  it('removes orphaned objects older than the safety window', async () => {
    const orphan = crypto.randomBytes(512);
    const target = objectPath(orphan);
    fs.mkdirSync(path.dirname(target), { recursive: true });
    fs.writeFileSync(target, orphan);
    const fresh = crypto.randomBytes(512);
    fs.mkdirSync(path.dirname(objectPath(fresh)), { recursive: true });
    fs.writeFileSync(objectPath(fresh), fresh);
    const twoHoursAgo = new Date(Date.now() - 2 * 3600 * 1000);
    fs.utimesSync(target, twoHoursAgo, twoHoursAgo);

    const report = await sweep();
    const keys = report.orphans_removed.map((item: any) => item.object_key);
    expect(keys).toContain(`blake3/${blake3Hex(orphan).slice(0, 2)}/${blake3Hex(orphan).slice(2, 4)}/${blake3Hex(orphan)}`);
    expect(fs.existsSync(target)).toBe(false);
    expect(fs.existsSync(objectPath(fresh))).toBe(true);
  });
});

describe('retention extensions', () => {
  it('rejects a shorter expiry and changes nothing', async () => {
    const { pkg } = await finalizedPackage('standard', { 'x.txt': crypto.randomBytes(32) });
    const earlier = new Date(Date.parse(pkg.expires_at) - 3600_000).toISOString();
    const response = await api.post(`/packages/${pkg.id}/retention/extensions`, { new_expires_at: earlier, reason: 'shorten' });
    expect(response.status).toBe(409);
    const problem = await problemOf(response);
    expect(problem.current_expires_at).toBe(pkg.expires_at);
    expect(problem.requested_expires_at).toBe(earlier);
    expect((await retentionState(pkg.id)).current_expires_at).toBe(pkg.expires_at);
    const history = await (await api.get(`/packages/${pkg.id}/retention/history`)).json();
    expect(history.events.map((event: any) => event.event_type)).toEqual(['package.created', 'package.finalized']);
  });

  it('moves the expiry later and records the event', async () => {
    const { pkg } = await finalizedPackage('standard', { 'y.txt': crypto.randomBytes(32) });
    const later = new Date(Date.parse(pkg.expires_at) + 86_400_000).toISOString();
    const response = await api.post(`/packages/${pkg.id}/retention/extensions`, { new_expires_at: later, reason: 'audit' });
    expect(response.status).toBe(200);
    expect((await response.json()).current_expires_at).toBe(later);
    const history = await (await api.get(`/packages/${pkg.id}/retention/history`)).json();
    const extended = history.events.at(-1);
    expect(extended.event_type).toBe('retention.extended');
    expect(extended.actor).toBe('test-admin');
    expect(extended.payload).toEqual({ package_id: pkg.id, previous_expires_at: pkg.expires_at, new_expires_at: later, reason: 'audit' });
  });

  it('rejects an extension without a reason', async () => {
    const { pkg } = await finalizedPackage('standard', { 'z.txt': crypto.randomBytes(32) });
    const later = new Date(Date.parse(pkg.expires_at) + 1000).toISOString();
    expect((await api.post(`/packages/${pkg.id}/retention/extensions`, { new_expires_at: later })).status).toBe(400);
    expect((await api.post(`/packages/${pkg.id}/retention/extensions`, { new_expires_at: later, reason: '' })).status).toBe(400);
    expect((await api.post(`/packages/${pkg.id}/retention/extensions`, { new_expires_at: 'tomorrow', reason: 'r' })).status).toBe(400);
  });

  it('rejects extensions of open and never-expiring packages', async () => {
    const open = await api.createPackage({ retention_class: 'short' });
    const when = new Date(Date.now() + 86_400_000).toISOString();
    expect((await api.post(`/packages/${open.id}/retention/extensions`, { new_expires_at: when, reason: 'r' })).status).toBe(409);
    const { pkg } = await finalizedPackage('permanent', { 'p.txt': crypto.randomBytes(32) });
    const permanent = await api.post(`/packages/${pkg.id}/retention/extensions`, { new_expires_at: when, reason: 'r' });
    expect(permanent.status).toBe(409);
    expect((await problemOf(permanent)).detail).toMatch(/never expires/);
    expect((await retentionState(pkg.id)).reasons[0]).toMatch(/^never expires/);
  });

  it('needs the retention scope', async () => {
    const { pkg } = await finalizedPackage('standard', { 'w.txt': crypto.randomBytes(32) });
    const later = new Date(Date.parse(pkg.expires_at) + 1000).toISOString();
    const attempts = [
      writerApi.post(`/packages/${pkg.id}/retention/extensions`, { new_expires_at: later, reason: 'r' }),
      writerApi.post(`/packages/${pkg.id}/retention/holds`, { reason: 'r' }),
    ];
    for (const response of await Promise.all(attempts)) {
      expect(response.status).toBe(403);
      expect(response.headers.get('www-authenticate')).toContain('error="insufficient_scope"');
    }
    expect((await writerApi.post('/retention/sweep', { dry_run: true })).status).toBe(403);
    expect((await writerApi.get(`/packages/${pkg.id}/retention`)).status).toBe(200);
  });
});

describe('retention history', () => {
  it('returns byte-identical JCS and CBOR on repeated calls', async () => {
    const { pkg } = await finalizedPackage('standard', { 'h.txt': crypto.randomBytes(32) });
    await api.post(`/packages/${pkg.id}/retention/holds`, { reason: 'history' });

    const json1 = await api.get(`/packages/${pkg.id}/retention/history`);
    expect(json1.headers.get('content-type')).toBe('application/json');
    const text1 = await json1.text();
    const text2 = await (await api.get(`/packages/${pkg.id}/retention/history`)).text();
    expect(text2).toBe(text1);
    expect(canonicalJson(JSON.parse(text1))).toBe(text1);

    const cbor1 = await api.get(`/packages/${pkg.id}/retention/history`, { headers: { accept: 'application/cbor' } });
    expect(cbor1.headers.get('content-type')).toBe('application/cbor');
    const bytes1 = Buffer.from(await cbor1.arrayBuffer());
    const bytes2 = Buffer.from(await (await api.get(`/packages/${pkg.id}/retention/history`, { headers: { accept: 'application/cbor' } })).arrayBuffer());
    expect(bytes2.equals(bytes1)).toBe(true);
    expect(decodeCbor(bytes1)).toEqual(JSON.parse(text1));
  });
});

/** Runs `npm run retention -- sweep` as its own process against the test database and returns its report. */
async function runSweepCli(): Promise<{ code: number | null; stderr: string; report: Record<string, any> }> {
  const child = spawn(process.execPath, [path.join(ROOT, 'node_modules/tsx/dist/cli.mjs'), 'scripts/retention.ts', 'sweep'], {
    cwd: ROOT,
    env: { ...process.env, ...environment.env, LOG_LEVEL: 'warn' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (chunk) => (stdout += chunk));
  child.stderr.on('data', (chunk) => (stderr += chunk));
  const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
  return { code, stderr, report: code === 0 ? JSON.parse(stdout) : {} };
}

/** Starts the server again on the same environment and points both clients at it. */
async function restartServer(): Promise<void> {
  server = await startServer(environment);
  api = new ApiClient(server.url, environment.adminToken);
  writerApi = api.withToken(writerApi.token!);
}
