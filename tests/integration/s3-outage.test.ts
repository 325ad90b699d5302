import crypto from 'node:crypto';
import { ListObjectsV2Command, type S3Client } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { blake3Hex } from '@/server/digest/blake3-hex';
import { objectKeyForBlake3 } from '@/server/storage/backend';
import { ApiClient, checkedFetch, problemOf } from '../support/client';
import { createTestEnvironment, startServer, type TestEnvironment, type TestServer } from '../support/server';
import { createBucket, s3PrimarySettings, startSwift, swiftClient, type SwiftServer } from '../support/swift';

const MiB = 1024 * 1024;
const BUCKET = 'artifact-store-outage';

let swift: SwiftServer;
let client: S3Client;
let environment: TestEnvironment;
let server: TestServer;
let api: ApiClient;

beforeAll(async () => {
  swift = await startSwift();
  client = swiftClient(swift);
  await createBucket(client, BUCKET);
  environment = await createTestEnvironment({
    ...s3PrimarySettings(swift, BUCKET),
    SCRUB_INTERVAL_SECONDS: '0',
    SWEEP_INTERVAL_SECONDS: '0',
  });
  server = await startServer(environment);
  api = new ApiClient(server.url, environment.adminToken);
});

afterAll(async () => {
  await server?.stop();
  await environment?.cleanup();
  await swift?.stop();
});

async function health(): Promise<{ status: number; body: Record<string, any> }> {
  const response = await checkedFetch(`${server.url}/api/v1/health`);
  return { status: response.status, body: await response.json() };
}

function base64(value: string): string {
  return Buffer.from(value, 'utf8').toString('base64');
}

async function createUpload(packageId: string, relativePath: string, length: number): Promise<string> {
  const created = await api.request('POST', '/uploads', {
    headers: {
      'Tus-Resumable': '1.0.0',
      'Upload-Length': String(length),
      'Upload-Metadata': `package_id ${base64(packageId)},relative_path ${base64(relativePath)}`,
    },
  });
  expect(created.status).toBe(201);
  return new URL(created.headers.get('location')!).pathname.replace(/^\/api\/v1/, '');
}

function patch(location: string, offset: number, body: Uint8Array<ArrayBuffer>): Promise<Response> {
  return api.request('PATCH', location, {
    headers: { 'Tus-Resumable': '1.0.0', 'Upload-Offset': String(offset), 'Content-Type': 'application/offset+octet-stream' },
    body,
  });
}

function postMultipart(packageId: string, relativePath: string, bytes: Buffer): Promise<Response> {
  const form = new FormData();
  form.set('relative_path', relativePath);
  form.set('file', new Blob([new Uint8Array(bytes)]), relativePath);
  return api.request('POST', `/packages/${packageId}/files`, { body: form });
}

/** Asserts a 503 problem that names the S3 backend as unavailable. */
async function expectStorageUnavailable(response: Response, uploadMethod: string): Promise<void> {
  expect(response.status, uploadMethod).toBe(503);
  const problem = await problemOf(response);
  expect(problem.title, uploadMethod).toBe('Storage backend unavailable');
  expect(problem.backend_id, uploadMethod).toBe('s3-primary');
  expect(problem.detail, uploadMethod).toMatch(/Storage backend "s3-primary" is unavailable: .*cannot be reached/);
}

async function fileAddedEvents(packageId: string): Promise<any[]> {
  const { events } = await api.events(0, 0, '&event_type=file.added');
  return events.filter((event) => event.subject_id === packageId);
}

async function bucketKeys(): Promise<string[]> {
  const response = await client.send(new ListObjectsV2Command({ Bucket: BUCKET }));
  return (response.Contents ?? []).map((item) => item.Key!).sort();
}

describe('S3 outage with S3 as the only backend', () => {
  it('fails uploads with 503, records nothing and recovers without a restart', async () => {
    expect((await health()).status).toBe(200);
    const pkg = await api.createPackage({ name: 's3-outage' });
    const raw = crypto.randomBytes(64 * 1024);
    const multipart = crypto.randomBytes(32 * 1024);
    // Larger than one part, so the tus hand-off is a multipart upload to the bucket.
    const tusBytes = crypto.randomBytes(6 * MiB + 3);
    const half = Math.floor(tusBytes.length / 2);

    // The first half of the tus upload reaches the local staging file before the outage.
    const location = await createUpload(pkg.id, 'tus.bin', tusBytes.length);
    expect((await patch(location, 0, new Uint8Array(tusBytes.subarray(0, half)))).status).toBe(204);

    await swift.stopServers();

    const degraded = await health();
    expect(degraded.status).toBe(503);
    expect(degraded.body.status).toBe('degraded');
    expect(degraded.body.backends).toHaveLength(1);
    expect(degraded.body.backends[0]).toMatchObject({ id: 's3-primary', status: 'unavailable' });
    expect(degraded.body.backends[0].detail).toMatch(/cannot be reached|timed out/);

    await expectStorageUnavailable(await api.putFile(pkg.id, 'raw.bin', new Uint8Array(raw)), 'raw PUT');
    await expectStorageUnavailable(await postMultipart(pkg.id, 'multipart.bin', multipart), 'multipart POST');
    await expectStorageUnavailable(await patch(location, half, new Uint8Array(tusBytes.subarray(half))), 'tus PATCH completion');

    const listed = await (await api.get(`/packages/${pkg.id}/files`)).json();
    expect(listed.files).toEqual([]);
    expect(await fileAddedEvents(pkg.id)).toEqual([]);

    await swift.startServers();

    // The first requests after the restart may meet connections the stopped proxy closed; the SDK retries them.
    let recovered = await health();
    for (let attempt = 0; attempt < 50 && recovered.status !== 200; attempt += 1) {
      await new Promise((resolve) => setTimeout(resolve, 200));
      recovered = await health();
    }
    expect(recovered.status).toBe(200);
    expect(recovered.body.backends[0]).toMatchObject({ id: 's3-primary', status: 'ok' });

    const put = await api.putFile(pkg.id, 'raw.bin', new Uint8Array(raw));
    expect(put.status).toBe(201);
    const posted = await postMultipart(pkg.id, 'multipart.bin', multipart);
    expect(posted.status).toBe(201);

    // The staging file already contains every byte, so the client resumes at the end with an empty PATCH.
    const head = await api.request('HEAD', location, { headers: { 'Tus-Resumable': '1.0.0' } });
    expect(head.status).toBe(200);
    const offset = Number(head.headers.get('upload-offset'));
    expect(offset).toBe(tusBytes.length);
    expect((await patch(location, offset, new Uint8Array(0))).status).toBe(204);

    const files = (await (await api.get(`/packages/${pkg.id}/files`)).json()).files;
    const byPath = Object.fromEntries(files.map((file: any) => [file.relative_path, file]));
    expect(Object.keys(byPath).sort()).toEqual(['multipart.bin', 'raw.bin', 'tus.bin']);
    for (const [relativePath, bytes] of [
      ['raw.bin', raw],
      ['multipart.bin', multipart],
      ['tus.bin', tusBytes],
    ] as const) {
      expect(byPath[relativePath].digest_primary_hex, relativePath).toBe(blake3Hex(bytes));
      const download = await api.get(`/files/${byPath[relativePath].id}/download`);
      expect(download.status, relativePath).toBe(200);
      expect(blake3Hex(new Uint8Array(await download.arrayBuffer())), relativePath).toBe(blake3Hex(bytes));
    }
    expect(await fileAddedEvents(pkg.id)).toHaveLength(3);
    expect(await bucketKeys()).toEqual([raw, multipart, tusBytes].map((bytes) => objectKeyForBlake3(blake3Hex(bytes))).sort());
  });
});
