import crypto from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ApiClient } from '../support/client';
import { createTestEnvironment, startServer, type TestEnvironment, type TestServer } from '../support/server';

// scripts/server.mjs closes a connection whose request body sends no byte for BODY_IDLE_TIMEOUT_SECONDS.
// These tests set it to 1 s and stall bodies on raw sockets, as a client that vanished mid-upload would.

const IDLE_TIMEOUT_SECONDS = 1;
// The time a test waits for the server to close a stalled connection before it fails.
const CLOSE_DEADLINE_MS = 10_000;

let environment: TestEnvironment;
let server: TestServer;
let api: ApiClient;

beforeAll(async () => {
  environment = await createTestEnvironment();
  server = await startServer(environment, { BODY_IDLE_TIMEOUT_SECONDS: String(IDLE_TIMEOUT_SECONDS) });
  api = new ApiClient(server.url, environment.adminToken);
});

afterAll(async () => {
  await server?.stop();
  await environment?.cleanup();
});

function base64(value: string): string {
  return Buffer.from(value, 'utf8').toString('base64');
}

/** Creates a tus upload of `length` bytes into the package and returns its URL's path. */
async function createUpload(packageId: string, relativePath: string, length: number): Promise<string> {
  const created = await api.request('POST', '/uploads', {
    headers: {
      'Tus-Resumable': '1.0.0',
      'Upload-Length': String(length),
      'Upload-Metadata': `package_id ${base64(packageId)},relative_path ${base64(relativePath)}`,
    },
  });
  if (created.status !== 201) throw new Error(`creating the upload responded ${created.status}: ${await created.text()}`);
  return new URL(created.headers.get('location')!).pathname;
}

/** A raw connection that has sent a request's headers and the start of its body, then nothing more. */
interface StalledRequest {
  /** Resolves with the milliseconds from the last byte sent until the server closed the connection. */
  closed: Promise<number>;
  /** Whatever the server sent before it closed the connection. */
  received(): string;
}

async function stallRequest(head: string, bodyStart: Buffer): Promise<StalledRequest> {
  const socket = net.connect(server.port, '127.0.0.1');
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', resolve);
    socket.once('error', reject);
  });
  let received = '';
  socket.on('data', (chunk: Buffer) => (received += chunk.toString('latin1')));
  socket.on('error', () => {});
  await new Promise<void>((resolve) => socket.write(Buffer.concat([Buffer.from(head, 'latin1'), bodyStart]), () => resolve()));
  const lastByteSentAt = performance.now();

  const closed = new Promise<number>((resolve, reject) => {
    const deadline = setTimeout(() => {
      socket.destroy();
      reject(new Error(`the server kept a stalled request body open for more than ${CLOSE_DEADLINE_MS} ms`));
    }, CLOSE_DEADLINE_MS);
    socket.once('close', () => {
      clearTimeout(deadline);
      resolve(performance.now() - lastByteSentAt);
    });
  });
  return { closed, received: () => received };
}

function requestHead(method: string, target: string, headers: Record<string, string>): string {
  const lines = [`${method} ${target} HTTP/1.1`, `Host: 127.0.0.1:${server.port}`, `Authorization: Bearer ${api.token}`];
  for (const [name, value] of Object.entries(headers)) lines.push(`${name}: ${value}`);
  return `${lines.join('\r\n')}\r\n\r\n`;
}

describe('request body idle timeout', () => {
  it('frees the upload of a stalled tus PATCH', async () => {
    const pkg = await api.createPackage();
    const content = crypto.randomBytes(1000);
    const uploadPath = await createUpload(pkg.id, 'stalled.bin', content.length);

    const stalled = await stallRequest(
      requestHead('PATCH', uploadPath, {
        'Tus-Resumable': '1.0.0',
        'Upload-Offset': '0',
        'Content-Type': 'application/offset+octet-stream',
        'Content-Length': String(content.length),
      }),
      content.subarray(0, 100),
    );
    const closedAfterMs = await stalled.closed;
    expect(closedAfterMs).toBeGreaterThanOrEqual(IDLE_TIMEOUT_SECONDS * 1000 - 50);
    expect(stalled.received()).toBe('');

    // The bytes that arrived before the cut stay, and the upload resumes from its offset.
    const tusHeaders = { 'Tus-Resumable': '1.0.0' };
    const head = await api.request('HEAD', uploadPath.replace(/^\/api\/v1/, ''), { headers: tusHeaders });
    expect(head.status).toBe(200);
    const offset = Number(head.headers.get('upload-offset'));
    expect(offset).toBe(100);

    const resumed = await api.request('PATCH', uploadPath.replace(/^\/api\/v1/, ''), {
      headers: { ...tusHeaders, 'Upload-Offset': String(offset), 'Content-Type': 'application/offset+octet-stream' },
      body: content.subarray(offset),
    });
    expect(resumed.status).toBe(204);
    const files = (await (await api.get(`/packages/${pkg.id}/files`)).json()).files;
    expect(files.map((file: { relative_path: string }) => file.relative_path)).toEqual(['stalled.bin']);
    expect(files[0].digest_sha256_hex).toBe(crypto.createHash('sha256').update(content).digest('hex'));
    expect(server.output()).toContain(`closed the connection of PATCH ${uploadPath} because no byte of its request body arrived for ${IDLE_TIMEOUT_SECONDS} s`);
  });

  it('closes a stalled PUT and records nothing', async () => {
    const pkg = await api.createPackage();
    const stalled = await stallRequest(
      requestHead('PUT', `/api/v1/packages/${pkg.id}/files/stalled.bin`, { 'Content-Length': '4096' }),
      crypto.randomBytes(10),
    );
    await stalled.closed;
    expect(stalled.received()).toBe('');

    // The handler fails on the cut body once the socket is gone, and removes its temporary file.
    const temporary = path.join(environment.storageRoot, 'tmp');
    for (let waited = 0; waited < 100 && fs.readdirSync(temporary).length > 0; waited += 1) await sleep(100);
    expect(fs.readdirSync(temporary)).toEqual([]);
    const files = (await (await api.get(`/packages/${pkg.id}/files`)).json()).files;
    expect(files).toEqual([]);

    const retry = await api.putFile(pkg.id, 'stalled.bin', Buffer.from('complete'));
    expect(retry.status).toBe(201);
  });

  it('keeps a slow body that never stalls', async () => {
    const pkg = await api.createPackage();
    const chunks = Array.from({ length: 4 }, () => crypto.randomBytes(1024));
    let next = 0;
    const body = new ReadableStream<Uint8Array>({
      async pull(stream) {
        if (next === chunks.length) {
          stream.close();
          return;
        }
        // Each pause is shorter than the idle timeout, while the whole body takes longer than it.
        await sleep(IDLE_TIMEOUT_SECONDS * 400);
        stream.enqueue(chunks[next]);
        next += 1;
      },
    });
    const put = await api.request('PUT', `/packages/${pkg.id}/files/slow.bin`, {
      headers: { 'Content-Length': String(4 * 1024) },
      body,
    });
    expect(put.status).toBe(201);
    const recorded = await put.json();
    expect(recorded.digest_sha256_hex).toBe(crypto.createHash('sha256').update(Buffer.concat(chunks)).digest('hex'));
  });

  it('keeps a complete body waiting for a lock', async () => {
    const pkg = await api.createPackage();
    const content = crypto.randomBytes(1000);
    const uploadPath = (await createUpload(pkg.id, 'locked.bin', content.length)).replace(/^\/api\/v1/, '');
    const patchHeaders = { 'Tus-Resumable': '1.0.0', 'Upload-Offset': '0', 'Content-Type': 'application/offset+octet-stream' };

    // The first PATCH holds the upload's lock for about 3.6 s, never idle for as long as the timeout.
    let sent = 0;
    const slowBody = new ReadableStream<Uint8Array>({
      async pull(stream) {
        if (sent === content.length) {
          stream.close();
          return;
        }
        if (sent > 0) await sleep(IDLE_TIMEOUT_SECONDS * 400);
        stream.enqueue(content.subarray(sent, sent + 100));
        sent += 100;
      },
    });
    const holder = api.request('PATCH', uploadPath, { headers: { ...patchHeaders, 'Content-Length': String(content.length) }, body: slowBody });
    await sleep(300);

    // The second PATCH has sent its whole body and waits 2 s for the lock, longer than the idle timeout.
    const waiter = await api.request('PATCH', uploadPath, { headers: patchHeaders, body: content.subarray(0, 10) });
    expect(waiter.status).toBe(423);
    expect((await holder).status).toBe(204);
  });

  it('rejects an invalid setting at start', async () => {
    await expect(startServer(environment, { BODY_IDLE_TIMEOUT_SECONDS: '1.5' })).rejects.toThrow(
      'Invalid BODY_IDLE_TIMEOUT_SECONDS "1.5": expected a whole number of seconds from 0 to 3600.',
    );
  });

  it.each([
    ['POST, long poll', true, false],
    ['long poll, POST', false, true],
    ['POST, long poll, POST', true, true],
  ])('keeps a pipelined long poll (%s)', async (_order, postBefore, postAfter) => {
    const head = await api.lastEventSequence();
    const waitSeconds = IDLE_TIMEOUT_SECONDS + 2;
    // An invalid package creation reads its body and appends no event, so the long poll waits in full.
    const invalidPost = `${requestHead('POST', '/api/v1/packages', { 'Content-Type': 'application/json', 'Content-Length': '2' })}{}`;
    const longPoll = requestHead('GET', `/api/v1/events?since=${head}&wait_seconds=${waitSeconds}`, { Accept: 'application/json' });
    const requests = [...(postBefore ? [invalidPost] : []), longPoll, ...(postAfter ? [invalidPost] : [])];
    const closing = requestHead('GET', '/api/v1/health', { Connection: 'close' });

    // All requests go out at once on one connection (HTTP/1.1 pipelining); the last one closes it.
    const pipelined = await stallRequest(requests.join('') + closing, Buffer.alloc(0));
    await pipelined.closed;
    const statusLines = pipelined.received().match(/HTTP\/1\.1 \d{3}/g) ?? [];
    // No request's body timeout may close the connection while the long poll waits.
    expect(statusLines).toEqual([...requests.map((request) => (request === longPoll ? 'HTTP/1.1 200' : 'HTTP/1.1 400')), 'HTTP/1.1 200']);
  });

  it('leaves requests without a body alone', async () => {
    const head = await api.lastEventSequence();
    // A long poll after the last event sends nothing for longer than the idle timeout.
    const waitSeconds = IDLE_TIMEOUT_SECONDS + 1;
    const startedAt = performance.now();
    const response = await api.get(`/events?since=${head}&wait_seconds=${waitSeconds}`);
    expect(response.status).toBe(200);
    expect(performance.now() - startedAt).toBeGreaterThanOrEqual(waitSeconds * 1000 - 100);
  });
});
