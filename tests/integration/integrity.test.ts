import { execFile } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { blake3Hex } from '@/server/digest/blake3-hex';
import { decodeCbor } from '@/server/encoding/cbor';
import { verifyPackageDirectory } from '@/server/integrity/verify-package';
import { ApiClient, checkedFetch } from '../support/client';
import { createTestEnvironment, startServer, type TestEnvironment, type TestServer } from '../support/server';

const ROOT = path.resolve(import.meta.dirname, '../..');
const run = promisify(execFile);

let environment: TestEnvironment;
let server: TestServer;
let api: ApiClient;
let replicaRoot: string;

beforeAll(async () => {
  environment = await createTestEnvironment({ SCRUB_INTERVAL_SECONDS: '0', SWEEP_INTERVAL_SECONDS: '0', REPLICA_COUNT: '2' });
  replicaRoot = path.join(environment.dir, 'replica');
  environment.env.REPLICA_STORAGE_ROOT = replicaRoot;
  server = await startServer(environment);
  api = new ApiClient(server.url, environment.adminToken);
});

afterAll(async () => {
  await server?.stop();
  await environment?.cleanup();
});

/** Builds the path of a blob's file under a storage root, by the filesystem backend's key layout. */
function blobPath(root: string, contentAddress: string): string {
  const hex = contentAddress.slice('blake3:'.length);
  return path.join(root, 'blake3', hex.slice(0, 2), hex.slice(2, 4), hex);
}

function flipByte(file: string, offset: number): void {
  const bytes = fs.readFileSync(file);
  bytes[offset] ^= 0x01;
  fs.writeFileSync(file, bytes);
}

async function scrub(packageId?: string): Promise<Record<string, any>> {
  const response = await api.post('/scrub', packageId ? { package_id: packageId } : undefined);
  expect(response.status).toBe(200);
  return response.json();
}

/** Reads artifact_store_uploads_in_progress from /metrics, summed over its protocols. */
async function uploadsInProgress(): Promise<number> {
  const text = await (await api.get('/metrics')).text();
  return [...text.matchAll(/^artifact_store_uploads_in_progress\{[^}]*\} (\d+)$/gm)].reduce((sum, match) => sum + Number(match[1]), 0);
}

async function health(): Promise<{ status: number; body: Record<string, any> }> {
  const response = await checkedFetch(`${server.url}/api/v1/health`);
  return { status: response.status, body: await response.json() };
}

async function eventsOfType(type: string): Promise<any[]> {
  const { events } = await api.events(0, 0, `&event_type=${type}`);
  return events;
}

async function locationsOf(fileId: string): Promise<Record<string, string>> {
  const record = await (await api.get(`/files/${fileId}`)).json();
  return Object.fromEntries(record.storage.map((location: any) => [location.backend_id, location.status]));
}

/** Creates a finalized package with the given files; returns the package and its file records by path. */
async function createPackage(contents: Record<string, Buffer>) {
  const pkg = await api.createPackage({ name: `integrity-${crypto.randomUUID()}` });
  const records: Record<string, any> = {};
  for (const [relativePath, bytes] of Object.entries(contents)) {
    const response = await api.putFile(pkg.id, relativePath, new Uint8Array(bytes));
    expect(response.status).toBe(201);
    records[relativePath] = await response.json();
  }
  const finalized = await api.post(`/packages/${pkg.id}/finalize`);
  expect(finalized.status).toBe(200);
  return { pkg: await finalized.json(), records };
}

describe('replicated writes', () => {
  it('stores each new blob on both backends', async () => {
    const bytes = crypto.randomBytes(10_000);
    const { records } = await createPackage({ 'one.bin': bytes });
    expect(await locationsOf(records['one.bin'].id)).toEqual({ 'fs-primary': 'ok', 'fs-replica': 'ok' });
    const address = records['one.bin'].content_address;
    expect(fs.readFileSync(blobPath(environment.storageRoot, address)).equals(bytes)).toBe(true);
    expect(fs.readFileSync(blobPath(replicaRoot, address)).equals(bytes)).toBe(true);
  });
});

describe('fixity scrub', () => {
  it('finds a flipped byte and repairs it from the replica', async () => {
    const original = crypto.randomBytes(150_000);
    const { pkg, records } = await createPackage({ 'data.bin': original });
    const address = records['data.bin'].content_address;
    const primaryFile = blobPath(environment.storageRoot, address);
    flipByte(primaryFile, 1234);

    const report = await scrub(pkg.id);
    expect(report.corrupt.map((item: any) => [item.content_address, item.backend_id])).toEqual([[address, 'fs-primary']]);
    expect(report.repaired.map((item: any) => [item.content_address, item.backend_id])).toEqual([[address, 'fs-primary']]);
    expect(fs.readFileSync(primaryFile).equals(original)).toBe(true);

    const failed = (await eventsOfType('storage.location_failed')).filter((event) => event.subject_id === address);
    expect(failed).toHaveLength(1);
    expect(failed[0].payload).toMatchObject({ backend_id: 'fs-primary', status: 'corrupt' });
    const repaired = (await eventsOfType('storage.location_repaired')).filter((event) => event.subject_id === address);
    expect(repaired).toHaveLength(1);
    expect(repaired[0].payload).toMatchObject({ backend_id: 'fs-primary', source_backend_id: 'fs-replica', previous_status: 'corrupt' });

    expect(await locationsOf(records['data.bin'].id)).toEqual({ 'fs-primary': 'ok', 'fs-replica': 'ok' });
    expect((await health()).status).toBe(200);
  });

  it('finds a deleted blob file as missing and restores it', async () => {
    const original = crypto.randomBytes(5_000);
    const { pkg, records } = await createPackage({ 'gone.bin': original });
    const replicaFile = blobPath(replicaRoot, records['gone.bin'].content_address);
    fs.rmSync(replicaFile);

    const report = await scrub(pkg.id);
    expect(report.missing.map((item: any) => item.backend_id), JSON.stringify(report)).toEqual(['fs-replica']);
    expect(report.repaired.map((item: any) => item.backend_id)).toEqual(['fs-replica']);
    expect(fs.readFileSync(replicaFile).equals(original)).toBe(true);
    expect(await locationsOf(records['gone.bin'].id)).toEqual({ 'fs-primary': 'ok', 'fs-replica': 'ok' });
  });

  it('slows down while an upload runs', async () => {
    // 3 MB in two copies: 6 MB to read, 0.12 s at the default SCRUB_RATE_MB_PER_S (50) and 1.2 s at the
    // default SCRUB_BUSY_RATE_MB_PER_S (5).
    const { pkg } = await createPackage({ 'large.bin': crypto.randomBytes(3_000_000) });
    const target = await api.createPackage({ name: 'slow-upload' });
    const upload = http.request(api.url(`/packages/${target.id}/files/slow.bin`), {
      method: 'PUT',
      headers: { authorization: `Bearer ${api.token}`, 'content-length': '10' },
    });
    const responded = new Promise<http.IncomingMessage>((resolve, reject) => upload.on('response', resolve).on('error', reject));
    upload.write('x');
    await vi.waitFor(async () => expect(await uploadsInProgress()).toBe(1), { timeout: 10_000 });

    const busy = await scrub(pkg.id);
    expect(busy.bytes_read).toBeGreaterThanOrEqual(6_000_000);
    const busySeconds = (Date.parse(busy.finished_at) - Date.parse(busy.started_at)) / 1000;
    expect(busySeconds).toBeGreaterThanOrEqual(1);

    upload.end('123456789');
    expect((await responded).statusCode).toBe(201);
    await vi.waitFor(async () => expect(await uploadsInProgress()).toBe(0));
    const idle = await scrub(pkg.id);
    expect(idle.bytes_read).toBe(busy.bytes_read);
    const idleSeconds = (Date.parse(idle.finished_at) - Date.parse(idle.started_at)) / 1000;
    expect(idleSeconds).toBeLessThan(busySeconds / 2);
  });

  it('reports degraded health while no good copy exists', async () => {
    const original = crypto.randomBytes(20_000);
    const { pkg, records } = await createPackage({ 'both.bin': original });
    const address = records['both.bin'].content_address;
    flipByte(blobPath(environment.storageRoot, address), 10);
    flipByte(blobPath(replicaRoot, address), 20);

    const report = await scrub(pkg.id);
    expect(report.corrupt).toHaveLength(2);
    expect(report.repaired).toHaveLength(0);
    expect(report.repair_failed).toHaveLength(2);
    const degraded = await health();
    expect(degraded.status).toBe(503);
    expect(degraded.body.status).toBe('degraded');
    expect(degraded.body.failed_storage_locations).toBe(2);

    const outputBefore = server.output().length;
    const download = await api.get(`/files/${records['both.bin'].id}/download`);
    expect(download.status).toBe(500);
    await download.arrayBuffer();
    // The log names the error's class as written, not as a minifier renamed it. pino writes the line
    // asynchronously, so it may come after the response.
    const loggedErrors = () =>
      server
        .output()
        .slice(outputBefore)
        .split('\n')
        .filter((line) => line.includes('request failed with a server-side error'))
        .map((line) => JSON.parse(line).err)
        .map((err) => [err.type, err.message]);
    await expect
      .poll(loggedErrors, { timeout: 10_000 })
      .toEqual([['DomainError', `No readable copy of ${address} is available; an operator must check storage health.`]]);

    // An operator restores one copy by hand; the next scrub accepts it and rewrites the other from it.
    fs.writeFileSync(blobPath(environment.storageRoot, address), original);
    const recovered = await scrub(pkg.id);
    expect(recovered.repaired.map((item: any) => item.backend_id).sort()).toEqual(['fs-primary', 'fs-replica']);
    expect(fs.readFileSync(blobPath(replicaRoot, address)).equals(original)).toBe(true);
    const healthy = await health();
    expect(healthy.status).toBe(200);
    expect(healthy.body.failed_storage_locations).toBe(0);
  });
});

describe('download of a corrupt copy', () => {
  it('errors the body instead of completing it', async () => {
    const original = crypto.randomBytes(300_000);
    const { records } = await createPackage({ 'served.bin': original });
    const address = records['served.bin'].content_address;
    const fileId = records['served.bin'].id;
    flipByte(blobPath(environment.storageRoot, address), 299_000);

    const response = await api.get(`/files/${fileId}/download`);
    expect(response.status).toBe(200);
    const received: Uint8Array[] = [];
    const reader = response.body!.getReader();
    let failure: unknown;
    try {
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        received.push(value);
      }
    } catch (error) {
      failure = error;
    }
    expect(failure).toBeDefined();
    expect(Buffer.concat(received).length).toBeLessThan(original.length);

    // The download marked the primary copy corrupt, so the next one reads the replica.
    let statuses: Record<string, string> = {};
    for (let attempt = 0; attempt < 50; attempt += 1) {
      statuses = await locationsOf(fileId);
      if (statuses['fs-primary'] === 'corrupt') break;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    expect(statuses).toEqual({ 'fs-primary': 'corrupt', 'fs-replica': 'ok' });
    const failed = (await eventsOfType('storage.location_failed')).filter((event) => event.subject_id === address);
    expect(failed.map((event) => event.actor)).toEqual(['system:download-check']);

    const second = await api.get(`/files/${fileId}/download`);
    expect(Buffer.from(await second.arrayBuffer()).equals(original)).toBe(true);

    const report = await scrub();
    expect(report.repaired.map((item: any) => [item.content_address, item.backend_id])).toContainEqual([address, 'fs-primary']);
    expect((await health()).status).toBe(200);
  });
});

describe('download of a truncated copy', () => {
  it('serves the whole file from the next copy', async () => {
    const original = crypto.randomBytes(200_000);
    const { records } = await createPackage({ 'truncated-whole.bin': original });
    const fileId = records['truncated-whole.bin'].id;
    fs.truncateSync(blobPath(environment.storageRoot, records['truncated-whole.bin'].content_address), 100);

    const response = await api.get(`/files/${fileId}/download`);
    expect(response.status).toBe(200);
    expect(Buffer.from(await response.arrayBuffer()).equals(original)).toBe(true);
    expect(await locationsOf(fileId)).toEqual({ 'fs-primary': 'corrupt', 'fs-replica': 'ok' });
  });

  it('serves a range within the remaining bytes from the next copy', async () => {
    const original = crypto.randomBytes(200_000);
    const { records } = await createPackage({ 'truncated-prefix.bin': original });
    const fileId = records['truncated-prefix.bin'].id;
    fs.truncateSync(blobPath(environment.storageRoot, records['truncated-prefix.bin'].content_address), 100_000);

    const response = await api.get(`/files/${fileId}/download`, { headers: { Range: 'bytes=10-19' } });
    expect(response.status).toBe(206);
    expect(Buffer.from(await response.arrayBuffer()).equals(original.subarray(10, 20))).toBe(true);
    expect(await locationsOf(fileId)).toEqual({ 'fs-primary': 'corrupt', 'fs-replica': 'ok' });
  });
});

describe('ranged download of a truncated copy', () => {
  it('serves the range from the next copy', async () => {
    const original = crypto.randomBytes(200_000);
    const { records } = await createPackage({ 'truncated.bin': original });
    const address = records['truncated.bin'].content_address;
    const fileId = records['truncated.bin'].id;
    fs.truncateSync(blobPath(environment.storageRoot, address), 100);

    const response = await api.get(`/files/${fileId}/download`, { headers: { Range: 'bytes=150000-150099' } });
    expect(response.status).toBe(206);
    expect(Buffer.from(await response.arrayBuffer()).equals(original.subarray(150_000, 150_100))).toBe(true);
    expect(await locationsOf(fileId)).toEqual({ 'fs-primary': 'corrupt', 'fs-replica': 'ok' });

    const report = await scrub();
    expect(report.repaired.map((item: any) => [item.content_address, item.backend_id])).toContainEqual([address, 'fs-primary']);
  });
});

describe('offline package check', () => {
  const contents: Record<string, Buffer> = {
    'README.txt': Buffer.from('offline check\n'),
    'bin/tool': crypto.randomBytes(80_000),
  };
  let downloadDir: string;
  let manifestFile: string;
  let manifestDigest: string;

  beforeAll(async () => {
    const { pkg } = await createPackage(contents);
    manifestDigest = pkg.manifest_digest;
    downloadDir = path.join(environment.dir, 'download');
    const listed = await (await api.get(`/packages/${pkg.id}/files`)).json();
    for (const file of listed.files) {
      const bytes = Buffer.from(await (await api.get(`/files/${file.id}/download`)).arrayBuffer());
      fs.mkdirSync(path.dirname(path.join(downloadDir, file.relative_path)), { recursive: true });
      fs.writeFileSync(path.join(downloadDir, file.relative_path), bytes);
    }
    const manifest = new Uint8Array(await (await api.get(`/packages/${pkg.id}/manifest`)).arrayBuffer());
    expect(`blake3:${blake3Hex(manifest)}`).toBe(manifestDigest);
    expect((decodeCbor(manifest) as any).file_count).toBe(2);
    manifestFile = path.join(environment.dir, 'manifest.cbor');
    fs.writeFileSync(manifestFile, manifest);
  });

  const runVerify = async (args: string[]) => {
    try {
      const { stdout, stderr } = await run(process.execPath, [path.join(ROOT, 'node_modules/tsx/dist/cli.mjs'), path.join(ROOT, 'scripts/verify.ts'), ...args], { cwd: ROOT });
      return { code: 0, stdout, stderr };
    } catch (error) {
      const failed = error as { code: number; stdout: string; stderr: string };
      return { code: failed.code, stdout: failed.stdout, stderr: failed.stderr };
    }
  };

  it('accepts the downloaded package', async () => {
    const report = await verifyPackageDirectory(downloadDir, fs.readFileSync(manifestFile), manifestDigest);
    expect(report).toMatchObject({ ok: true, manifest_digest_ok: true, checked_files: 2 });
    const cli = await runVerify([downloadDir, '--manifest', manifestFile, '--digest', manifestDigest]);
    expect(cli.code).toBe(0);
  });

  it('names a changed file', async () => {
    const file = path.join(downloadDir, 'bin/tool');
    flipByte(file, 40_000);
    try {
      const report = await verifyPackageDirectory(downloadDir, fs.readFileSync(manifestFile));
      expect(report.changed.map((item) => item.relative_path)).toEqual(['bin/tool']);
      const cli = await runVerify([downloadDir, '--manifest', manifestFile]);
      expect(cli.code).toBe(3);
      expect(cli.stderr).toContain('changed: bin/tool');
    } finally {
      flipByte(file, 40_000);
    }
  });

  it('names an added file', async () => {
    const file = path.join(downloadDir, 'bin/added.txt');
    fs.writeFileSync(file, 'not in the manifest');
    try {
      const report = await verifyPackageDirectory(downloadDir, fs.readFileSync(manifestFile));
      expect(report.extra).toEqual(['bin/added.txt']);
      const cli = await runVerify([downloadDir, '--manifest', manifestFile]);
      expect(cli.code).toBe(3);
      expect(cli.stderr).toContain('extra: bin/added.txt');
    } finally {
      fs.rmSync(file);
    }
  });

  it('names a removed file', async () => {
    const file = path.join(downloadDir, 'README.txt');
    fs.rmSync(file);
    try {
      const report = await verifyPackageDirectory(downloadDir, fs.readFileSync(manifestFile));
      expect(report.missing).toEqual(['README.txt']);
      const cli = await runVerify([downloadDir, '--manifest', manifestFile]);
      expect(cli.code).toBe(3);
      expect(cli.stderr).toContain('missing: README.txt');
    } finally {
      fs.writeFileSync(file, contents['README.txt']);
    }
  });

  it('exits 2 for invalid arguments', async () => {
    expect((await runVerify([downloadDir])).code).toBe(2);
    expect((await runVerify([downloadDir, '--manifest', manifestFile, '--digest', 'sha1:abc'])).code).toBe(2);
  });
});

describe('scrub command', () => {
  it('repairs a copy and exits 3 while one stays corrupt', async () => {
    const original = crypto.randomBytes(30_000);
    const { pkg, records } = await createPackage({ 'cli.bin': original });
    const address = records['cli.bin'].content_address;
    // The embedded database allows one process, so the command runs with the server stopped.
    await server.stop();

    const runScrub = async () => {
      try {
        const { stdout } = await run(process.execPath, [path.join(ROOT, 'node_modules/tsx/dist/cli.mjs'), path.join(ROOT, 'scripts/scrub.ts'), '--package', pkg.id], {
          cwd: ROOT,
          env: { ...process.env, ...environment.env, LOG_LEVEL: 'silent' },
        });
        return { code: 0, report: JSON.parse(stdout) };
      } catch (error) {
        const failed = error as { code: number; stdout: string; stderr: string };
        return { code: failed.code, report: JSON.parse(failed.stdout || 'null'), stderr: failed.stderr };
      }
    };

    flipByte(blobPath(replicaRoot, address), 7);
    const repaired = await runScrub();
    expect(repaired.code).toBe(0);
    expect(repaired.report.repaired.map((item: any) => [item.content_address, item.backend_id])).toEqual([[address, 'fs-replica']]);
    expect(fs.readFileSync(blobPath(replicaRoot, address)).equals(original)).toBe(true);

    flipByte(blobPath(environment.storageRoot, address), 7);
    flipByte(blobPath(replicaRoot, address), 8);
    const unresolved = await runScrub();
    expect(unresolved.code).toBe(3);
    expect(unresolved.stderr).toContain(`failed copy: ${address} on fs-primary`);
  });
});
