import crypto from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ApiClient } from '../support/client';
import { createTestEnvironment, startServer, type TestEnvironment, type TestServer } from '../support/server';

let environment: TestEnvironment;
let server: TestServer;
let api: ApiClient;

beforeAll(async () => {
  environment = await createTestEnvironment({ SWEEP_INTERVAL_SECONDS: '0', SCRUB_INTERVAL_SECONDS: '0' });
  server = await startServer(environment);
  api = new ApiClient(server.url, environment.adminToken);
});

afterAll(async () => {
  await server?.stop();
  await environment?.cleanup();
});

/** Returns the access log lines of `logServer` whose request id is `requestId`. */
function accessLines(logServer: TestServer, requestId: string | null): Record<string, unknown>[] {
  expect(requestId).toBeTruthy();
  return logServer
    .output()
    .split('\n')
    .filter((line) => line.startsWith('{'))
    .map((line) => JSON.parse(line) as Record<string, unknown>)
    .filter((line) => line.msg === 'request' && line.request_id === requestId);
}

/** Waits until `logServer` has logged the request, because the line is written once the response has ended. */
async function accessLine(logServer: TestServer, requestId: string | null): Promise<Record<string, unknown>> {
  await expect.poll(() => accessLines(logServer, requestId).length, { timeout: 10_000 }).toBe(1);
  return accessLines(logServer, requestId)[0];
}

/** Sends a raw HTTP/1.1 request with `X-Request-Id` and resets the connection after `delayMs`, before any response. */
async function sendAndReset(method: string, path: string, requestId: string, extraHeaders = '', delayMs = 50): Promise<void> {
  const socket = net.connect(server.port, '127.0.0.1');
  await new Promise<void>((resolve, reject) => socket.once('connect', resolve).once('error', reject));
  socket.write(
    `${method} ${path} HTTP/1.1\r\nHost: 127.0.0.1:${server.port}\r\nAuthorization: Bearer ${environment.adminToken}\r\n` +
      `X-Request-Id: ${requestId}\r\n${extraHeaders}\r\n`,
  );
  if (delayMs > 0) await sleep(delayMs);
  socket.resetAndDestroy();
}

/** Sends a request with the admin token and the given X-Request-Id. */
function sendWithId(method: string, path: string, requestId: string, headers: Record<string, string> = {}): Promise<Response> {
  return fetch(`${server.url}${path}`, { method, headers: { 'x-request-id': requestId, authorization: `Bearer ${environment.adminToken}`, ...headers } });
}

describe('access log', () => {
  it('logs a request with its caller, status and duration', async () => {
    const response = await api.get('/packages?limit=1&producer=access-log');
    expect(response.status).toBe(200);
    await response.arrayBuffer();

    const line = await accessLine(server, response.headers.get('x-request-id'));
    expect(line).toMatchObject({ level: 30, method: 'GET', path: '/api/v1/packages?limit=1&producer=access-log', status: 200, actor: 'test-admin', complete: true });
    expect(typeof line.duration_ms).toBe('number');
    expect(line.duration_ms as number).toBeGreaterThanOrEqual(0);
  });

  it('logs a rejected token without an actor and without the token', async () => {
    const secret = 'not-a-token-of-this-registry';
    const response = await api.withToken(secret).get('/packages');
    expect(response.status).toBe(401);
    await response.arrayBuffer();

    const line = await accessLine(server, response.headers.get('x-request-id'));
    expect(line).toMatchObject({ method: 'GET', path: '/api/v1/packages', status: 401, complete: true });
    expect(line.actor).toBeUndefined();
    expect(server.output()).not.toContain(secret);
  });

  it('logs a download served outside Next.js once its body has ended', async () => {
    const pkg = await api.createPackage();
    const { id } = await (await api.putFile(pkg.id, 'logged.bin', crypto.randomBytes(100_000))).json();
    const response = await api.get(`/files/${id}/download`);
    expect(response.status).toBe(200);
    expect((await response.arrayBuffer()).byteLength).toBe(100_000);

    const line = await accessLine(server, response.headers.get('x-request-id'));
    expect(line).toMatchObject({ method: 'GET', path: `/api/v1/files/${id}/download`, status: 200, complete: true });
  });

  it('marks a download the client left as incomplete', async () => {
    const pkg = await api.createPackage();
    const { id } = await (await api.putFile(pkg.id, 'left.bin', crypto.randomBytes(40 * 1024 * 1024))).json();
    const response = await api.get(`/files/${id}/download`);
    expect(response.status).toBe(200);
    const reader = response.body!.getReader();
    await reader.read();
    await reader.cancel();

    const line = await accessLine(server, response.headers.get('x-request-id'));
    expect(line).toMatchObject({ status: 200, complete: false });
  });

  it('logs tus requests with their actor', async () => {
    const options = await fetch(`${server.url}/api/v1/uploads`, { method: 'OPTIONS', headers: { 'x-request-id': 'tus-options' } });
    expect(options.status).toBe(204);
    expect(await accessLine(server, 'tus-options')).toMatchObject({ method: 'OPTIONS', path: '/api/v1/uploads', status: 204, complete: true });

    const post = await sendWithId('POST', '/api/v1/uploads', 'tus-post', { 'tus-resumable': '1.0.0', 'upload-length': '1' });
    expect(post.status).toBe(400);
    await post.arrayBuffer();
    expect(await accessLine(server, 'tus-post')).toMatchObject({ method: 'POST', status: 400, actor: 'test-admin', complete: true });
  });

  it('logs a method the route does not allow', async () => {
    const response = await sendWithId('DELETE', '/api/v1/packages', 'method-not-allowed');
    expect(response.status).toBe(405);
    await response.arrayBuffer();
    expect(await accessLine(server, 'method-not-allowed')).toMatchObject({ method: 'DELETE', path: '/api/v1/packages', status: 405, complete: true });
  });

  it('logs HEAD requests as complete', async () => {
    const listing = await sendWithId('HEAD', '/api/v1/packages?limit=1', 'head-listing');
    expect(listing.status).toBe(200);
    expect(await accessLine(server, 'head-listing')).toMatchObject({ method: 'HEAD', status: 200, complete: true });

    const download = await sendWithId('HEAD', '/api/v1/files/00000000-0000-4000-8000-000000000000/download', 'head-download-404');
    expect(download.status).toBe(404);
    expect(await accessLine(server, 'head-download-404')).toMatchObject({ method: 'HEAD', status: 404, complete: true });
  });

  it('logs a long poll the client left', async () => {
    const since = await api.lastEventSequence();
    await sendAndReset('GET', `/api/v1/events?since=${since}&wait_seconds=2`, 'long-poll-left', 'Accept: application/json\r\n');
    expect(await accessLine(server, 'long-poll-left')).toMatchObject({ status: 200, complete: false });
  });

  it('logs a download the client left before the response', async () => {
    const pkg = await api.createPackage();
    const { id } = await (await api.putFile(pkg.id, 'left-early.bin', Buffer.alloc(4 * 1024 * 1024, 7))).json();
    // The reset comes at once, so the connection closes while the handler still runs.
    await sendAndReset('GET', `/api/v1/files/${id}/download`, 'download-left-early', '', 0);
    expect(await accessLine(server, 'download-left-early')).toMatchObject({ complete: false });
  });

  it('marks an event stream the client left as incomplete', async () => {
    const controller = new AbortController();
    const response = await fetch(`${server.url}/api/v1/events/stream?tail=1`, {
      headers: { 'x-request-id': 'stream-left', authorization: `Bearer ${environment.adminToken}` },
      signal: controller.signal,
    });
    expect(response.status).toBe(200);
    await response.body!.getReader().read();
    controller.abort();
    expect(await accessLine(server, 'stream-left')).toMatchObject({ status: 200, complete: false });
  });

  it('writes nothing with ACCESS_LOG=false', async () => {
    // An environment of its own, because an embedded database admits one server process.
    const quietEnvironment = await createTestEnvironment({ ACCESS_LOG: 'false', SWEEP_INTERVAL_SECONDS: '0', SCRUB_INTERVAL_SECONDS: '0' });
    const quiet = await startServer(quietEnvironment);
    try {
      const response = await new ApiClient(quiet.url, quietEnvironment.adminToken).get('/packages?limit=1');
      expect(response.status).toBe(200);
      await response.arrayBuffer();
      // A line would be written when the response ended, before the client has read the body.
      await new Promise((resolve) => setTimeout(resolve, 500));
      expect(accessLines(quiet, response.headers.get('x-request-id'))).toEqual([]);
    } finally {
      await quiet.stop();
      await quietEnvironment.cleanup();
    }
  });
});

/** Counts the server's open file descriptors on stored objects (Linux /proc). */
function openObjectDescriptors(): number {
  const directory = `/proc/${server.process.pid}/fd`;
  return fs.readdirSync(directory).filter((descriptor) => {
    try {
      return fs.readlinkSync(`${directory}/${descriptor}`).startsWith(environment.storageRoot);
    } catch {
      return false;
    }
  }).length;
}

/** Reads the number of open SSE waiters from /metrics. */
async function openStreamWaiters(): Promise<number> {
  const text = await (await api.get('/metrics')).text();
  const match = /^artifact_store_event_waiters\{kind="sse"\} (\d+)$/m.exec(text);
  expect(match).not.toBeNull();
  return Number(match![1]);
}

describe('requests the client leaves', () => {
  // Without the check after the handler, each of these downloads kept its file open until garbage collection.
  it('closes the stored object of a download left before the response', async () => {
    const pkg = await api.createPackage();
    const { id } = await (await api.putFile(pkg.id, 'left-early-descriptor.bin', Buffer.alloc(4 * 1024 * 1024, 9))).json();
    for (let index = 0; index < 20; index += 1) await sendAndReset('GET', `/api/v1/files/${id}/download`, `descriptor-${index}`, '', 0);
    await sleep(1_000);
    expect(openObjectDescriptors()).toBe(0);
  });

  // Next.js neither reads nor cancels the body of a HEAD response, so the stream behind it ran forever.
  it('leaves no event stream running after a HEAD', async () => {
    const before = await openStreamWaiters();
    for (let index = 0; index < 3; index += 1) {
      const response = await sendWithId('HEAD', '/api/v1/events/stream?tail=1', `stream-head-${index}`);
      expect(response.status).toBe(200);
    }
    await expect.poll(openStreamWaiters, { timeout: 5_000 }).toBe(before);
    await sleep(1_000);
    expect(await openStreamWaiters()).toBe(before);
  });
});
