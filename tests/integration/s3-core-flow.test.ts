import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { ListMultipartUploadsCommand, ListObjectsV2Command, type S3Client } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { blake3Hex } from '@/server/digest/blake3-hex';
import { decodeCbor } from '@/server/encoding/cbor';
import { objectKeyForBlake3 } from '@/server/storage/backend';
import { ApiClient } from '../support/client';
import { createTestEnvironment, startServer, type TestEnvironment, type TestServer } from '../support/server';
import { createBucket, s3PrimarySettings, startSwift, swiftClient, type SwiftServer } from '../support/swift';

const MiB = 1024 * 1024;
const BUCKET = 'artifact-store-core-flow';

let swift: SwiftServer;
let client: S3Client;
let environment: TestEnvironment;
let server: TestServer;
let api: ApiClient;

beforeAll(async () => {
  swift = await startSwift();
  client = swiftClient(swift);
  await createBucket(client, BUCKET);
  environment = await createTestEnvironment(s3PrimarySettings(swift, BUCKET));
  server = await startServer(environment);
  api = new ApiClient(server.url, environment.adminToken);
});

afterAll(async () => {
  await server?.stop();
  await environment?.cleanup();
  await swift?.stop();
});

async function bucketKeys(): Promise<string[]> {
  const response = await client.send(new ListObjectsV2Command({ Bucket: BUCKET }));
  return (response.Contents ?? []).map((item) => item.Key!).sort();
}

function base64(value: string): string {
  return Buffer.from(value, 'utf8').toString('base64');
}

/** Uploads `content` with tus in two PATCH requests and returns the last response. */
async function uploadWithTus(packageId: string, relativePath: string, content: Buffer): Promise<Response> {
  const created = await api.request('POST', '/uploads', {
    headers: {
      'Tus-Resumable': '1.0.0',
      'Upload-Length': String(content.length),
      'Upload-Metadata': `package_id ${base64(packageId)},relative_path ${base64(relativePath)}`,
    },
  });
  expect(created.status).toBe(201);
  const location = new URL(created.headers.get('location')!).pathname.replace(/^\/api\/v1/, '');

  const half = Math.floor(content.length / 2);
  let last: Response | undefined;
  for (const [offset, end] of [
    [0, half],
    [half, content.length],
  ]) {
    last = await api.request('PATCH', location, {
      headers: { 'Tus-Resumable': '1.0.0', 'Upload-Offset': String(offset), 'Content-Type': 'application/offset+octet-stream' },
      body: new Uint8Array(content.subarray(offset, end)),
    });
    expect(last.status, `PATCH at offset ${offset}`).toBe(204);
  }
  return last!;
}

describe('core flow with S3 as the only backend', () => {
  it('reports the S3 backend as healthy', async () => {
    const response = await api.get('/health');
    expect(response.status).toBe(200);
    const health = await response.json();
    expect(health.backends).toEqual([
      { id: 's3-primary', kind: 's3', retrieval_tier: 'hot', role: 'primary', status: 'ok', free_bytes: null, total_bytes: null },
    ]);
  });

  it('stores, finalizes and serves a package from the bucket', async () => {
    const pkg = await api.createPackage({ name: 's3-core-flow' });

    const readme = Buffer.from('stored in S3\n');
    const put = await api.putFile(pkg.id, 'docs/README.txt', readme, 'text/plain');
    expect(put.status).toBe(201);
    const putFile = await put.json();
    expect(putFile.storage[0].backend_id).toBe('s3-primary');
    expect(putFile.content_address).toBe(`blake3:${blake3Hex(readme)}`);

    // Larger than one part, so the tus hand-off streams a multipart upload into the bucket.
    const archive = crypto.randomBytes(6 * MiB + 7);
    await uploadWithTus(pkg.id, 'dist/archive.bin', archive);
    const files = (await (await api.get(`/packages/${pkg.id}/files`)).json()).files;
    const tusFile = files.find((file: Record<string, any>) => file.relative_path === 'dist/archive.bin');
    expect(tusFile.size_bytes).toBe(archive.length);
    expect(tusFile.storage[0].backend_id).toBe('s3-primary');

    expect(await bucketKeys()).toEqual([objectKeyForBlake3(blake3Hex(readme)), objectKeyForBlake3(blake3Hex(archive))].sort());
    const uploads = await client.send(new ListMultipartUploadsCommand({ Bucket: BUCKET }));
    expect(uploads.Uploads ?? []).toEqual([]);
    // Nothing stays in the local staging directory or lands in the filesystem store.
    expect(fs.readdirSync(path.join(environment.env.DATA_DIR, 'uploads'))).toEqual([]);
    expect(fs.existsSync(path.join(environment.storageRoot, 'blake3'))).toBe(false);

    const finalized = await api.post(`/packages/${pkg.id}/finalize`);
    expect(finalized.status).toBe(200);
    const record = await finalized.json();
    const manifestResponse = await api.get(`/packages/${pkg.id}/manifest`);
    expect(manifestResponse.status).toBe(200);
    const cbor = new Uint8Array(await manifestResponse.arrayBuffer());
    expect(`blake3:${blake3Hex(cbor)}`).toBe(record.manifest_digest);
    const manifest = decodeCbor(cbor) as any;
    expect(manifest.files.map((file: any) => file.relative_path)).toEqual(['dist/archive.bin', 'docs/README.txt']);

    const whole = await api.get(`/files/${tusFile.id}/download`);
    expect(whole.status).toBe(200);
    expect(Buffer.from(await whole.arrayBuffer()).equals(archive)).toBe(true);

    const start = 5 * MiB - 3;
    const ranged = await api.get(`/files/${tusFile.id}/download`, { headers: { range: `bytes=${start}-${start + 9}` } });
    expect(ranged.status).toBe(206);
    expect(ranged.headers.get('content-range')).toBe(`bytes ${start}-${start + 9}/${archive.length}`);
    expect(Buffer.from(await ranged.arrayBuffer()).equals(archive.subarray(start, start + 10))).toBe(true);

    const pastEnd = await api.get(`/files/${putFile.id}/download`, { headers: { range: `bytes=${readme.length}-` } });
    expect(pastEnd.status).toBe(416);
  });
});
