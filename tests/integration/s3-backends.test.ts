import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { DeleteObjectCommand, GetObjectCommand, HeadObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { blake3Hex } from '@/server/digest/blake3-hex';
import { objectKeyForBlake3 } from '@/server/storage/backend';
import { ApiClient, checkedFetch } from '../support/client';
import { createTestEnvironment, startServer, type TestEnvironment, type TestServer } from '../support/server';
import { createBucket, startSwift, swiftClient, type SwiftServer } from '../support/swift';

const BUCKET = 'artifact-store-backends';
const S3_ID = 's3-main';
const FS_ID = 'fs-copy';

let swift: SwiftServer;
let client: S3Client;
let environment: TestEnvironment;
let server: TestServer;
let api: ApiClient;
let fsRoot: string;
let backendsFile: string;

/** Writes the backends file: S3 as the primary, a filesystem copy, and any extra backends. */
function writeBackendsFile(copies: number, extra: Array<Record<string, unknown>> = []): void {
  const backends = [
    {
      id: S3_ID,
      kind: 's3',
      endpoint: swift.endpoint,
      region: swift.region,
      bucket: BUCKET,
      force_path_style: true,
      part_size_bytes: 5 * 1024 * 1024,
      access_key_id_env: 'TEST_S3_ACCESS_KEY_ID',
      secret_access_key_env: 'TEST_S3_SECRET_ACCESS_KEY',
      retrieval_tier: 'hot',
    },
    { id: FS_ID, kind: 'fs', root: fsRoot, retrieval_tier: 'warm' },
    ...extra,
  ];
  fs.writeFileSync(backendsFile, JSON.stringify({ backends, primary: S3_ID, copies }, null, 2));
}

beforeAll(async () => {
  swift = await startSwift();
  client = swiftClient(swift);
  await createBucket(client, BUCKET);
  environment = await createTestEnvironment({
    SCRUB_INTERVAL_SECONDS: '0',
    SWEEP_INTERVAL_SECONDS: '0',
    TEST_S3_ACCESS_KEY_ID: swift.accessKeyId,
    TEST_S3_SECRET_ACCESS_KEY: swift.secretAccessKey,
  });
  // The short form and BACKENDS_FILE must not be mixed.
  delete environment.env.STORAGE_ROOT;
  fsRoot = path.join(environment.dir, 'fs-copy');
  backendsFile = path.join(environment.dir, 'backends.json');
  environment.env.BACKENDS_FILE = backendsFile;
  writeBackendsFile(2);
  server = await startServer(environment);
  api = new ApiClient(server.url, environment.adminToken);
});

afterAll(async () => {
  await server?.stop();
  await environment?.cleanup();
  await swift?.stop();
});

function blobPath(root: string, hex: string): string {
  return path.join(root, 'blake3', hex.slice(0, 2), hex.slice(2, 4), hex);
}

async function s3Object(key: string): Promise<Buffer | null> {
  try {
    const response = await client.send(new GetObjectCommand({ Bucket: BUCKET, Key: key }));
    return Buffer.from(await response.Body!.transformToByteArray());
  } catch (error) {
    if ((error as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode === 404) return null;
    throw error;
  }
}

async function locationsOf(fileId: string): Promise<Record<string, string>> {
  const record = await (await api.get(`/files/${fileId}`)).json();
  return Object.fromEntries(record.storage.map((location: any) => [location.backend_id, location.status]));
}

async function health(): Promise<{ status: number; body: Record<string, any> }> {
  const response = await checkedFetch(`${server.url}/api/v1/health`);
  return { status: response.status, body: await response.json() };
}

async function scrub(packageId: string): Promise<Record<string, any>> {
  const response = await api.post('/scrub', { package_id: packageId });
  expect(response.status).toBe(200);
  return response.json();
}

async function downloadDigest(fileId: string, range?: string): Promise<{ status: number; hex: string }> {
  const response = await api.get(`/files/${fileId}/download`, range ? { headers: { range } } : {});
  return { status: response.status, hex: blake3Hex(new Uint8Array(await response.arrayBuffer())) };
}

/** Creates a finalized package with one file; returns the file record and the package record. */
async function storedPackage(bytes: Buffer) {
  const pkg = await api.createPackage({ name: `backends-${crypto.randomUUID()}` });
  const put = await api.putFile(pkg.id, 'data.bin', new Uint8Array(bytes));
  expect(put.status).toBe(201);
  const file = await put.json();
  const finalized = await api.post(`/packages/${pkg.id}/finalize`);
  expect(finalized.status).toBe(200);
  return { file, pkg: await finalized.json() };
}

describe('fs and s3 backends with two copies', () => {
  it('reports both backends with their roles', async () => {
    const response = await api.get('/backends');
    expect(response.status).toBe(200);
    const { backends } = await response.json();
    expect(backends.map((backend: any) => [backend.id, backend.kind, backend.retrieval_tier, backend.role, backend.status])).toEqual([
      [S3_ID, 's3', 'hot', 'primary', 'ok'],
      [FS_ID, 'fs', 'warm', 'copy', 'ok'],
    ]);
    const report = await health();
    expect(report.status).toBe(200);
    expect(report.body.backends.map((backend: any) => backend.id)).toEqual([S3_ID, FS_ID]);
  });

  it('writes every new blob to both backends', async () => {
    const bytes = crypto.randomBytes(200_000);
    const { file } = await storedPackage(bytes);
    const hex = blake3Hex(bytes);
    const storage = [...file.storage].sort((a: any, b: any) => a.backend_id.localeCompare(b.backend_id));
    expect(storage).toEqual([
      { backend_id: FS_ID, object_key: objectKeyForBlake3(hex), retrieval_tier: 'warm', status: 'ok' },
      { backend_id: S3_ID, object_key: objectKeyForBlake3(hex), retrieval_tier: 'hot', status: 'ok' },
    ]);
    expect((await s3Object(objectKeyForBlake3(hex)))?.equals(bytes)).toBe(true);
    expect(fs.readFileSync(blobPath(fsRoot, hex)).equals(bytes)).toBe(true);
  });

  it('S3 object deleted: fs copy served, scrub repairs', async () => {
    const bytes = crypto.randomBytes(300_000);
    const { file, pkg } = await storedPackage(bytes);
    const hex = blake3Hex(bytes);
    const manifestKey = objectKeyForBlake3(pkg.manifest_digest.slice('blake3:'.length));
    await client.send(new DeleteObjectCommand({ Bucket: BUCKET, Key: objectKeyForBlake3(hex) }));
    await client.send(new DeleteObjectCommand({ Bucket: BUCKET, Key: manifestKey }));
    expect(await s3Object(objectKeyForBlake3(hex))).toBeNull();

    const ranged = await downloadDigest(file.id, 'bytes=1000-1999');
    expect(ranged.status).toBe(206);
    expect(ranged.hex).toBe(blake3Hex(bytes.subarray(1000, 2000)));
    const whole = await downloadDigest(file.id);
    expect(whole.status).toBe(200);
    expect(whole.hex).toBe(hex);
    const manifest = await api.get(`/packages/${pkg.id}/manifest`);
    expect(manifest.status).toBe(200);
    expect(`blake3:${blake3Hex(new Uint8Array(await manifest.arrayBuffer()))}`).toBe(pkg.manifest_digest);

    // The failed reads marked the S3 copies missing, which health reports.
    expect(await locationsOf(file.id)).toEqual({ [S3_ID]: 'missing', [FS_ID]: 'ok' });
    const degraded = await health();
    expect(degraded.status).toBe(503);
    expect(degraded.body.failed_storage_locations).toBe(2);

    const report = await scrub(pkg.id);
    expect(report.repaired.map((item: any) => [item.object_key, item.backend_id]).sort()).toEqual(
      [
        [objectKeyForBlake3(hex), S3_ID],
        [manifestKey, S3_ID],
      ].sort(),
    );
    expect((await s3Object(objectKeyForBlake3(hex)))?.equals(bytes)).toBe(true);
    expect(await s3Object(manifestKey)).not.toBeNull();
    expect(await locationsOf(file.id)).toEqual({ [S3_ID]: 'ok', [FS_ID]: 'ok' });
    expect((await health()).status).toBe(200);
  });

  it('fs file deleted: S3 copy served, scrub repairs', async () => {
    const bytes = crypto.randomBytes(250_000);
    const { file, pkg } = await storedPackage(bytes);
    const hex = blake3Hex(bytes);
    fs.rmSync(blobPath(fsRoot, hex));

    const whole = await downloadDigest(file.id);
    expect(whole.status).toBe(200);
    expect(whole.hex).toBe(hex);

    const report = await scrub(pkg.id);
    expect(report.missing.map((item: any) => [item.object_key, item.backend_id])).toEqual([[objectKeyForBlake3(hex), FS_ID]]);
    expect(report.repaired.map((item: any) => [item.object_key, item.backend_id])).toEqual([[objectKeyForBlake3(hex), FS_ID]]);
    expect(fs.readFileSync(blobPath(fsRoot, hex)).equals(bytes)).toBe(true);
    expect(await locationsOf(file.id)).toEqual({ [S3_ID]: 'ok', [FS_ID]: 'ok' });
  });

  it('serves from the fs copy while S3 is unreachable', async () => {
    const bytes = crypto.randomBytes(100_000);
    const { file } = await storedPackage(bytes);
    await swift.stopServers();
    try {
      const whole = await downloadDigest(file.id);
      expect(whole.status).toBe(200);
      expect(whole.hex).toBe(blake3Hex(bytes));
      const report = await health();
      expect(report.status).toBe(503);
      expect(report.body.backends.map((backend: any) => [backend.id, backend.status])).toEqual([
        [S3_ID, 'unavailable'],
        [FS_ID, 'ok'],
      ]);
      // An unreachable backend is not a missing copy: the location stays ok.
      expect(await locationsOf(file.id)).toEqual({ [S3_ID]: 'ok', [FS_ID]: 'ok' });
    } finally {
      await swift.startServers();
    }
  });
});

describe('a backend added to the configuration', () => {
  it('is filled with every blob by the scrub', async () => {
    const bytes = crypto.randomBytes(50_000);
    const { file, pkg } = await storedPackage(bytes);
    const hex = blake3Hex(bytes);

    // PGlite allows one process, so the server restarts with the new configuration.
    await server.stop();
    const archiveRoot = path.join(environment.dir, 'fs-archive');
    writeBackendsFile(3, [{ id: 'fs-archive', kind: 'fs', root: archiveRoot, retrieval_tier: 'cold' }]);
    server = await startServer(environment);
    api = new ApiClient(server.url, environment.adminToken);

    const report = await scrub(pkg.id);
    // The package's blobs: the file and the manifest in CBOR and in JSON.
    const manifestJson = new Uint8Array(await (await api.get(`/packages/${pkg.id}/manifest.json`)).arrayBuffer());
    const keys = [hex, pkg.manifest_digest.slice('blake3:'.length), blake3Hex(manifestJson)].map(objectKeyForBlake3);
    expect(report.added.map((item: any) => [item.object_key, item.backend_id]).sort()).toEqual(keys.map((key) => [key, 'fs-archive']).sort());
    expect(fs.readFileSync(blobPath(archiveRoot, hex)).equals(bytes)).toBe(true);
    expect(await locationsOf(file.id)).toEqual({ [S3_ID]: 'ok', [FS_ID]: 'ok', 'fs-archive': 'ok' });

    // A second scrub finds every copy in place and adds none.
    expect((await scrub(pkg.id)).added).toEqual([]);
  });
});
