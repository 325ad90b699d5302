import fs from 'node:fs';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import * as tus from 'tus-js-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ApiClient, checkedFetch, checkTusResponse } from '../support/client';
import { ON_POSTGRES } from '../support/database';
import { toolDigest, writeRandomFile } from '../support/files';
import { createTestEnvironment, startServer, type TestEnvironment, type TestServer } from '../support/server';

const MiB = 1024 * 1024;
// The size an operator uploads over an unreliable link; the test takes about half a minute.
const RESUME_TEST_BYTES = 1024 * MiB;

function base64(value: string): string {
  return Buffer.from(value, 'utf8').toString('base64');
}

describe('tus resume across a restart', () => {
  let environment: TestEnvironment;
  let server: TestServer | undefined;

  beforeAll(async () => {
    environment = await createTestEnvironment();
  });

  afterAll(async () => {
    await server?.stop();
    await environment?.cleanup();
  });

  it('tus-js-client resumes after abort and restart', { timeout: 600_000 }, async () => {
    const source = path.join(environment.dir, 'source.bin');
    writeRandomFile(source, RESUME_TEST_BYTES);
    server = await startServer(environment);
    const admin = new ApiClient(server.url, environment.adminToken);
    const packageId = (await admin.createPackage({ name: 'tus-resume' })).id;
    const headers = { Authorization: `Bearer ${environment.adminToken}` };
    const metadata = { package_id: packageId, relative_path: 'big/source.bin', media_type: 'application/octet-stream' };

    // The first attempt aborts once about half of the bytes went out.
    const uploadUrl = await new Promise<string>((resolve, reject) => {
      const upload: tus.Upload = new tus.Upload(fs.createReadStream(source), {
        endpoint: `${server!.url}/api/v1/uploads`,
        headers,
        metadata,
        uploadSize: RESUME_TEST_BYTES,
        retryDelays: [],
        onAfterResponse: checkTusResponse,
        onProgress(bytesSent) {
          if (bytesSent < RESUME_TEST_BYTES / 2) return;
          upload.abort().then(() => resolve(upload.url!), reject);
        },
        onError: reject,
        onSuccess: () => reject(new Error('the upload finished before it was aborted')),
      });
      upload.start();
    });
    const uploadId = uploadUrl.split('/').pop()!;

    await server.stop();
    server = await startServer(environment);
    const resumedUrl = `${server.url}/api/v1/uploads/${uploadId}`;
    const head = await checkedFetch(resumedUrl, { method: 'HEAD', headers: { ...headers, 'Tus-Resumable': '1.0.0' } });
    const offsetAfterRestart = Number(head.headers.get('upload-offset'));
    expect(offsetAfterRestart).toBeGreaterThan(0);
    expect(offsetAfterRestart).toBeLessThan(RESUME_TEST_BYTES);

    await new Promise<void>((resolve, reject) => {
      const upload = new tus.Upload(fs.createReadStream(source), {
        uploadUrl: resumedUrl,
        headers,
        metadata,
        uploadSize: RESUME_TEST_BYTES,
        retryDelays: [],
        onAfterResponse: checkTusResponse,
        onError: reject,
        onSuccess: () => resolve(),
      });
      upload.start();
    });

    const admin2 = new ApiClient(server.url, environment.adminToken);
    const files = (await (await admin2.get(`/packages/${packageId}/files`)).json()).files;
    const file = files.find((entry: Record<string, any>) => entry.relative_path === 'big/source.bin');
    expect(file.size_bytes).toBe(RESUME_TEST_BYTES);
    expect(file.digest_sha256_hex).toBe(toolDigest('sha256sum', source));
    expect(file.digest_primary_hex).toBe(toolDigest('/usr/bin/b3sum', source));
    expect(fs.existsSync(path.join(environment.storageRoot, 'uploads', uploadId))).toBe(false);
    expect(fs.existsSync(path.join(environment.storageRoot, 'uploads', `${uploadId}.json`))).toBe(false);
  });
});

describe('tus concurrent PATCH', () => {
  let environment: TestEnvironment;
  const servers: TestServer[] = [];

  beforeAll(async () => {
    environment = await createTestEnvironment();
    servers.push(await startServer(environment));
    // Two processes on one database and storage root need PostgreSQL; PGlite allows one process.
    if (ON_POSTGRES) servers.push(await startServer(environment));
  });

  afterAll(async () => {
    for (const server of servers) await server.stop();
    await environment?.cleanup();
  });

  // staggered: B's PATCH arrives while A's slow body is still streaming, so it waits on A's lock.
  // simultaneous: both are sent at the same moment with their whole bodies at hand.
  it.each(['staggered', 'simultaneous'] as const)('concurrent PATCH appends only once (%s)', async (start) => {
    const first = new ApiClient(servers[0].url, environment.adminToken);
    const second = new ApiClient(servers.at(-1)!.url, environment.adminToken);
    const packageId = (await first.createPackage({ name: 'tus-u1' })).id;
    const created = await first.request('POST', '/uploads', {
      headers: {
        'Tus-Resumable': '1.0.0',
        'Upload-Length': String(2 * MiB),
        'Upload-Metadata': `package_id ${base64(packageId)},relative_path ${base64(`u1-${start}.bin`)}`,
      },
    });
    expect(created.status).toBe(201);
    const uploadPath = new URL(created.headers.get('location')!).pathname.replace(/^\/api\/v1/, '');
    const patchHeaders = { 'Tus-Resumable': '1.0.0', 'Upload-Offset': '0', 'Content-Type': 'application/offset+octet-stream' };

    let sentA = 0;
    const slowA = new ReadableStream<Uint8Array>({
      async pull(stream) {
        if (sentA >= MiB) {
          stream.close();
          return;
        }
        await sleep(100);
        stream.enqueue(new Uint8Array(64 * 1024).fill(0x41));
        sentA += 64 * 1024;
      },
    });
    const bodyA = start === 'staggered' ? slowA : Buffer.alloc(MiB, 0x41);
    const patchA = first.request('PATCH', uploadPath, { headers: { ...patchHeaders, 'Content-Length': String(MiB) }, body: bodyA });
    if (start === 'staggered') await sleep(300);
    const patchB = second.request('PATCH', uploadPath, { headers: patchHeaders, body: Buffer.alloc(MiB, 0x42) });
    const statuses = (await Promise.all([patchA, patchB])).map((response) => response.status);

    expect(statuses.filter((status) => status === 204)).toHaveLength(1);
    expect(statuses.filter((status) => status === 409 || status === 423)).toHaveLength(1);
    const head = await second.request('HEAD', uploadPath, { headers: { 'Tus-Resumable': '1.0.0' } });
    const offset = Number(head.headers.get('upload-offset'));
    const stored = fs.readFileSync(path.join(environment.storageRoot, 'uploads', uploadPath.split('/').pop()!));
    expect(offset).toBe(stored.length);
    expect(offset).toBe(MiB);
    const allA = stored.every((byte) => byte === 0x41);
    const allB = stored.every((byte) => byte === 0x42);
    expect(allA || allB).toBe(true);
  });
});
