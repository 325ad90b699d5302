import crypto from 'node:crypto';
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
