import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { blake3Hex } from '@/server/digest/blake3-hex';
import { ApiClient } from '../support/client';
import { createTestEnvironment, startServer, type TestEnvironment, type TestServer } from '../support/server';

// scripts/server.mjs serves downloads, raw PUTs and tus uploads without Next.js's request path. These tests cover what
// that path must handle itself: clients that go away, bodies that end short and paths that must still
// reach Next.js.

let environment: TestEnvironment;
let server: TestServer;
let api: ApiClient;

beforeAll(async () => {
  environment = await createTestEnvironment();
  server = await startServer(environment);
  api = new ApiClient(server.url, environment.adminToken);
});

afterAll(async () => {
  await server?.stop();
  await environment?.cleanup();
});

interface RawResponse {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: Buffer;
  /** False when the connection ended before the whole body arrived. */
  complete: boolean;
}

/** Sends one request over a new connection and collects the response, also a cut-off one. */
function send(method: string, target: string, headers: Record<string, string> = {}, body?: Buffer): Promise<RawResponse> {
  return new Promise((resolve, reject) => {
    const request = http.request(
      api.url(target),
      { method, agent: false, headers: { authorization: `Bearer ${api.token}`, ...headers } },
      (response) => {
        const chunks: Buffer[] = [];
        response.on('data', (chunk: Buffer) => chunks.push(chunk));
        const finish = () => resolve({ status: response.statusCode!, headers: response.headers, body: Buffer.concat(chunks), complete: response.complete });
        response.on('end', finish);
        response.on('aborted', finish);
        response.on('error', finish);
      },
    );
    request.on('error', reject);
    request.end(body);
  });
}

function blobPath(content: Buffer): string {
  const hex = blake3Hex(content);
  return path.join(environment.storageRoot, 'blake3', hex.slice(0, 2), hex.slice(2, 4), hex);
}

describe('data-plane routes outside Next.js', () => {
  it('survives clients leaving mid-download', async () => {
    const pkg = await api.createPackage();
    const content = crypto.randomBytes(32 * 1024 * 1024);
    const put = await api.putFile(pkg.id, 'big.bin', content);
    expect(put.status).toBe(201);
    const { id } = await put.json();

    for (let attempt = 0; attempt < 3; attempt += 1) {
      await new Promise<void>((resolve, reject) => {
        const request = http.get(api.url(`/files/${id}/download`), { agent: false, headers: { authorization: `Bearer ${api.token}` } }, (response) => {
          expect(response.statusCode).toBe(200);
          response.once('data', () => {
            request.destroy();
            resolve();
          });
        });
        request.on('error', (error: NodeJS.ErrnoException) => (error.code === 'ECONNRESET' ? resolve() : reject(error)));
      });
    }

    const whole = await send('GET', `/files/${id}/download`);
    expect(whole.status).toBe(200);
    expect(whole.complete).toBe(true);
    expect(whole.body.equals(content)).toBe(true);
    expect(server.output()).not.toContain('the direct route failed');
  });

  it('records nothing for a cut PUT body', async () => {
    const pkg = await api.createPackage();
    await new Promise<void>((resolve) => {
      const request = http.request(api.url(`/packages/${pkg.id}/files/cut.bin`), {
        method: 'PUT',
        agent: false,
        headers: { authorization: `Bearer ${api.token}`, 'content-length': String(8 * 1024 * 1024) },
      });
      request.on('error', () => resolve());
      request.write(crypto.randomBytes(1024 * 1024), () => setTimeout(() => request.destroy(), 200));
      request.on('close', () => resolve());
    });

    // The server notices the closed connection on its own schedule; the temporary file is gone once it has.
    const temporary = path.join(environment.storageRoot, 'tmp');
    for (let waited = 0; waited < 100 && fs.readdirSync(temporary).length > 0; waited += 1) {
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    expect(fs.readdirSync(temporary)).toEqual([]);
    const files = await (await api.get(`/packages/${pkg.id}/files`)).json();
    expect(files.files).toEqual([]);

    const retry = await api.putFile(pkg.id, 'cut.bin', Buffer.from('complete'));
    expect(retry.status).toBe(201);
    // A client that leaves is not a server error: logged at info, not as an unexpected error.
    expect(server.output()).toContain('the client closed the connection before the response');
    expect(server.output()).not.toContain('unexpected error');
  });

  it('cuts a download of a truncated copy', async () => {
    const pkg = await api.createPackage();
    const content = crypto.randomBytes(4 * 1024 * 1024);
    const { id } = await (await api.putFile(pkg.id, 'short.bin', content)).json();
    fs.truncateSync(blobPath(content), content.length / 2);

    const response = await send('GET', `/files/${id}/download`);
    expect(response.status).toBe(200);
    expect(response.headers['content-length']).toBe(String(content.length));
    expect(response.complete).toBe(false);
    expect(response.body.length).toBeLessThan(content.length);
  });

  it('decodes PUT path segments as Next.js', async () => {
    const pkg = await api.createPackage();
    const put = await send('PUT', `/packages/${pkg.id}/files/dir/a%2Fb%20c%2B%C3%A9.txt?ignored=1`, {}, Buffer.from('x'));
    expect(put.status).toBe(201);
    expect(JSON.parse(put.body.toString()).relative_path).toBe('dir/a/b c+é.txt');
  });

  it('leaves other path shapes to Next.js', async () => {
    const pkg = await api.createPackage();
    // A path with an empty segment goes to Next.js, which redirects or rejects it.
    const trailing = await send('PUT', `/packages/${pkg.id}/files/dir/`, {}, Buffer.from('x'));
    expect(trailing.status).not.toBe(201);
    const files = await (await api.get(`/packages/${pkg.id}/files`)).json();
    expect(files.files).toEqual([]);
  });
});

describe('methods a route does not allow', () => {
  it.each([
    ['POST', `/files/${'0'.repeat(8)}-0000-0000-0000-${'0'.repeat(12)}/download`, 'GET, HEAD, OPTIONS'],
    ['PUT', '/events', 'GET, HEAD, OPTIONS'],
    ['PATCH', '/packages', 'GET, HEAD, POST, OPTIONS'],
    ['GET', '/uploads', 'HEAD, POST, PATCH, DELETE, OPTIONS'],
  ])('answers %s %s with 405 and Allow', async (method, target, allow) => {
    const response = await send(method, target, { 'content-type': 'application/json' }, method === 'GET' ? undefined : Buffer.from('{}'));
    expect(response.status).toBe(405);
    expect(response.headers.allow).toBe(allow);
    expect(response.headers['content-type']).toBe('application/problem+json');
    expect(response.headers['x-request-id']).toMatch(/\S/);
    const problem = JSON.parse(response.body.toString());
    expect(problem.status).toBe(405);
    expect(problem.errors).toEqual([{ field: '(method)', rule: 'allowed_method', message: `expected one of ${allow}` }]);
  });
});
