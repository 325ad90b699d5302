import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { blake3Hex } from '@/server/digest/blake3-hex';
import { ApiClient, checkedFetch } from '../support/client';
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

/**
 * Sends one request with exactly the given request target over a new connection, and collects the
 * response, also a cut-off one. `host` replaces the Host header, which fetch does not allow.
 */
function send(method: string, target: string, headers: Record<string, string> = {}, body?: Buffer | string, host?: string): Promise<RawResponse> {
  return new Promise((resolve, reject) => {
    const request = http.request(
      {
        host: '127.0.0.1',
        port: server.port,
        method,
        path: target,
        agent: false,
        setHost: host === undefined,
        headers: { ...(host === undefined ? {} : { host }), authorization: `Bearer ${api.token}`, ...headers },
      },
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

/**
 * Sends the start of a multipart body that declares 8 MiB, and resolves with the response that arrives
 * while the rest of the file part is still missing. The connection is closed after the response.
 */
function postPartOfMultipart(packageId: string, relativePath: string): Promise<{ status: number; contentType: string | undefined }> {
  const boundary = 'partial-multipart-boundary';
  const head =
    `--${boundary}\r\nContent-Disposition: form-data; name="relative_path"\r\n\r\n${relativePath}\r\n` +
    `--${boundary}\r\nContent-Disposition: form-data; name="file"; filename="a.bin"\r\nContent-Type: application/octet-stream\r\n\r\n`;
  return new Promise((resolve, reject) => {
    const request = http.request(api.url(`/packages/${packageId}/files`), {
      method: 'POST',
      agent: false,
      headers: { authorization: `Bearer ${api.token}`, 'content-type': `multipart/form-data; boundary=${boundary}`, 'content-length': String(8 * 1024 * 1024) },
    });
    request.on('response', (response) => {
      response.resume();
      response.on('end', () => {
        request.destroy();
        resolve({ status: response.statusCode!, contentType: response.headers['content-type'] });
      });
    });
    request.on('error', reject);
    request.write(head);
    request.write(crypto.randomBytes(256 * 1024));
  });
}

function blobPath(content: Buffer): string {
  const hex = blake3Hex(content);
  return path.join(environment.storageRoot, 'blake3', hex.slice(0, 2), hex.slice(2, 4), hex);
}

describe('data-plane routes outside Next.js', () => {
  it('survives clients leaving mid-download', async () => {
    const outputBefore = server.output().length;
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

    const whole = await send('GET', `/api/v1/files/${id}/download`);
    expect(whole.status).toBe(200);
    expect(whole.complete).toBe(true);
    expect(whole.body.equals(content)).toBe(true);
    expect(server.output().slice(outputBefore)).not.toContain('the direct route failed');
  });

  it('records nothing for a cut PUT body', async () => {
    const outputBefore = server.output().length;
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
    expect(server.output().slice(outputBefore)).toContain('the client closed the connection before the response');
    expect(server.output().slice(outputBefore)).not.toContain('unexpected error');
  });

  it('records nothing for a cut multipart body', async () => {
    const pkg = await api.createPackage();
    const boundary = 'cut-multipart-boundary';
    const head = `--${boundary}\r\nContent-Disposition: form-data; name="relative_path"\r\n\r\ncut.bin\r\n--${boundary}\r\nContent-Disposition: form-data; name="file"; filename="cut.bin"\r\nContent-Type: application/octet-stream\r\n\r\n`;
    await new Promise<void>((resolve) => {
      const request = http.request(api.url(`/packages/${pkg.id}/files`), {
        method: 'POST',
        agent: false,
        headers: {
          authorization: `Bearer ${api.token}`,
          'content-type': `multipart/form-data; boundary=${boundary}`,
          'content-length': String(8 * 1024 * 1024),
        },
      });
      request.on('error', () => resolve());
      request.write(head);
      request.write(crypto.randomBytes(1024 * 1024), () => setTimeout(() => request.destroy(), 200));
      request.on('close', () => resolve());
    });

    // The server notices the closed connection on its own schedule; the upload ends once it has.
    const temporary = path.join(environment.storageRoot, 'tmp');
    const inProgress = async () => {
      const metrics = await (await api.get('/metrics')).text();
      return /^artifact_store_uploads_in_progress\{protocol="multipart"\} (\d+)$/m.exec(metrics)?.[1];
    };
    for (let waited = 0; waited < 100 && (fs.readdirSync(temporary).length > 0 || (await inProgress()) !== '0'); waited += 1) {
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    expect(fs.readdirSync(temporary)).toEqual([]);
    expect(await inProgress()).toBe('0');
    const files = await (await api.get(`/packages/${pkg.id}/files`)).json();
    expect(files.files).toEqual([]);
  });

  it('answers a rejected multipart while its body arrives', async () => {
    const outputBefore = server.output().length;
    const pkg = await api.createPackage();
    expect((await api.putFile(pkg.id, 'taken.bin', 'x')).status).toBe(201);
    // The consumer rejects the path before it reads the file part, while most of the body is still to come.
    expect(await postPartOfMultipart(pkg.id, '../escape.bin')).toEqual({ status: 400, contentType: 'application/problem+json' });
    expect(await postPartOfMultipart(pkg.id, 'taken.bin')).toEqual({ status: 409, contentType: 'application/problem+json' });

    await new Promise((resolve) => setTimeout(resolve, 500));
    expect(server.output().slice(outputBefore)).not.toContain('uncaughtException');
    expect((await api.get('/health')).status).toBe(200);
  });

  it('records no file of a failed multipart body', async () => {
    const pkg = await api.createPackage();
    const boundary = 'atomic-multipart-boundary';
    const part = (name: string, fileName: string, content: string) =>
      `--${boundary}\r\nContent-Disposition: form-data; name="${name}"; filename="${fileName}"\r\nContent-Type: application/octet-stream\r\n\r\n${content}\r\n`;
    const field = (name: string, value: string) => `--${boundary}\r\nContent-Disposition: form-data; name="${name}"\r\n\r\n${value}\r\n`;
    const headers = { 'content-type': `multipart/form-data; boundary=${boundary}` };

    // A second file part makes the request a 400, after the first part's bytes have all arrived.
    const twoFiles = await send('POST', `/api/v1/packages/${pkg.id}/files`, headers, `${field('relative_path', 'first.bin')}${part('file', 'a', 'one')}${part('file', 'b', 'two')}--${boundary}--\r\n`);
    expect(twoFiles.status).toBe(400);

    // A body that ends after the file part but before the closing boundary is cut, not complete.
    const unterminated = await send('POST', `/api/v1/packages/${pkg.id}/files`, headers, `${field('relative_path', 'second.bin')}${part('file', 'a', 'one')}`);
    expect(unterminated.status).toBe(400);

    // A file recorded anyway would be recorded by now, although its request already got its 400.
    await new Promise((resolve) => setTimeout(resolve, 1000));
    const files = await (await api.get(`/packages/${pkg.id}/files`)).json();
    expect(files.files).toEqual([]);
    const complete = await send('POST', `/api/v1/packages/${pkg.id}/files`, headers, `${field('relative_path', 'third.bin')}${part('file', 'a', 'one')}--${boundary}--\r\n`);
    expect(complete.status).toBe(201);
  });

  it('cuts a download of a corrupt copy', async () => {
    const pkg = await api.createPackage();
    const content = crypto.randomBytes(4 * 1024 * 1024);
    const { id } = await (await api.putFile(pkg.id, 'corrupt.bin', content)).json();
    const corrupt = Buffer.from(content);
    corrupt[corrupt.length - 10] ^= 0xff;
    fs.writeFileSync(blobPath(content), corrupt);

    const response = await send('GET', `/api/v1/files/${id}/download`);
    expect(response.status).toBe(200);
    expect(response.headers['content-length']).toBe(String(content.length));
    expect(response.complete).toBe(false);
    expect(response.body.length).toBeLessThan(content.length);
  });

  // The size check at open finds a truncated copy before the status line, so the client gets a problem.
  it('rejects a download of a truncated only copy', async () => {
    const pkg = await api.createPackage();
    const content = crypto.randomBytes(4 * 1024 * 1024);
    const { id } = await (await api.putFile(pkg.id, 'short.bin', content)).json();
    fs.truncateSync(blobPath(content), content.length / 2);

    const response = await send('GET', `/api/v1/files/${id}/download`);
    expect(response.status).toBe(500);
    expect(response.headers['content-type']).toBe('application/problem+json');
    expect(JSON.parse(response.body.toString()).title).toBe('Stored content unavailable');
    expect(response.complete).toBe(true);
  });

  it('decodes PUT path segments as Next.js', async () => {
    const pkg = await api.createPackage();
    const put = await send('PUT', `/api/v1/packages/${pkg.id}/files/dir/a%2Fb%20c%2B%C3%A9.txt?ignored=1`, {}, Buffer.from('x'));
    expect(put.status).toBe(201);
    expect(JSON.parse(put.body.toString()).relative_path).toBe('dir/a/b c+é.txt');
  });

  it('leaves other path shapes to Next.js', async () => {
    const pkg = await api.createPackage();
    // A path with an empty segment goes to Next.js, which redirects or rejects it.
    const trailing = await send('PUT', `/api/v1/packages/${pkg.id}/files/dir/`, {}, Buffer.from('x'));
    expect(trailing.status).not.toBe(201);
    const files = await (await api.get(`/packages/${pkg.id}/files`)).json();
    expect(files.files).toEqual([]);
  });
});

/**
 * Sends a request with `Expect: 100-continue` and sends `body` only once the server sends 100, as curl
 * does for large uploads. Resolves with the final response and whether the 100 came first.
 */
function sendExpectingContinue(method: string, requestPath: string, headers: Record<string, string>, body: Buffer): Promise<RawResponse & { continued: boolean }> {
  const url = new URL(server.url);
  return new Promise((resolve, reject) => {
    let continued = false;
    const request = http.request({
      host: url.hostname,
      port: url.port,
      method,
      path: requestPath,
      agent: false,
      headers: { ...headers, expect: '100-continue', 'content-length': String(body.length) },
    });
    request.on('continue', () => {
      continued = true;
      request.end(body);
    });
    request.on('error', reject);
    request.on('response', (response) => {
      const chunks: Buffer[] = [];
      response.on('data', (chunk: Buffer) => chunks.push(chunk));
      response.on('end', () => resolve({ status: response.statusCode!, headers: response.headers, body: Buffer.concat(chunks), complete: true, continued }));
    });
  });
}

describe('Expect: 100-continue', () => {
  it('asks for the body only after the checks', async () => {
    const pkg = await api.createPackage();
    const body = crypto.randomBytes(100 * 1024);
    const authorization = `Bearer ${environment.adminToken}`;

    const rejected = await sendExpectingContinue('PUT', `/api/v1/packages/${pkg.id}/files/a.bin`, { authorization: 'Bearer wrong-token' }, body);
    expect(rejected.status).toBe(401);
    expect(rejected.continued).toBe(false);
    expect(rejected.headers.connection).toBe('close');

    const stored = await sendExpectingContinue('PUT', `/api/v1/packages/${pkg.id}/files/a.bin`, { authorization }, body);
    expect(stored.status).toBe(201);
    expect(stored.continued).toBe(true);
    expect(JSON.parse(stored.body.toString()).digest_primary_hex).toBe(blake3Hex(body));

    // A body of 64 KiB or more is checked against the package and path before it is read.
    const pathTaken = await sendExpectingContinue('PUT', `/api/v1/packages/${pkg.id}/files/a.bin`, { authorization }, body);
    expect(pathTaken.status).toBe(409);
    expect(pathTaken.continued).toBe(false);
  });

  it('continues at once for Next.js routes', async () => {
    const body = Buffer.from(JSON.stringify({ name: 'expect-continue', producer: 'ci', subject: 'app@1.0.0', retention_class: 'standard' }));
    const created = await sendExpectingContinue('POST', '/api/v1/packages', { authorization: `Bearer ${environment.adminToken}`, 'content-type': 'application/json' }, body);
    expect(created.status).toBe(201);
    expect(created.continued).toBe(true);
  });
});

describe('methods a route does not allow', () => {
  it.each([
    ['POST', `/files/${'0'.repeat(8)}-0000-0000-0000-${'0'.repeat(12)}/download`, 'GET, HEAD, OPTIONS'],
    ['PUT', '/events', 'GET, HEAD, OPTIONS'],
    ['PATCH', '/packages', 'GET, HEAD, POST, OPTIONS'],
    ['GET', '/uploads', 'POST, OPTIONS'],
    ['GET', `/uploads/${'0'.repeat(32)}`, 'HEAD, PATCH, DELETE, OPTIONS'],
    ['POST', `/uploads/${'0'.repeat(32)}`, 'HEAD, PATCH, DELETE, OPTIONS'],
  ])('rejects %s %s with 405 and Allow', async (method, target, allow) => {
    const response = await send(method, `/api/v1${target}`, { 'content-type': 'application/json' }, method === 'GET' ? undefined : Buffer.from('{}'));
    expect(response.status).toBe(405);
    expect(response.headers.allow).toBe(allow);
    expect(response.headers['content-type']).toBe('application/problem+json');
    expect(response.headers['x-request-id']).toMatch(/\S/);
    const problem = JSON.parse(response.body.toString());
    expect(problem.status).toBe(405);
    expect(problem.errors).toEqual([{ field: '(method)', rule: 'allowed_method', message: `expected one of ${allow}` }]);
  });
});

// Odd Host headers and absolute-form targets: the Host value ends up in the request URL that the route
// handlers, the tus library and the HTTP metrics read.

/** Returns the value of artifact_store_http_requests_total for one route, method and status. */
async function requestCount(route: string, method: string, status: number): Promise<number> {
  const text = await (await api.get('/metrics')).text();
  const prefix = `artifact_store_http_requests_total{route="${route}",method="${method}",status="${status}"} `;
  const line = text.split('\n').find((candidate) => candidate.startsWith(prefix));
  return line === undefined ? 0 : Number(line.slice(prefix.length));
}

const DOWNLOAD_ROUTE = '/api/v1/files/[id]/download';

describe('odd Host headers on direct routes', () => {
  it('serves a Host with userinfo', async () => {
    const outputBefore = server.output().length;
    const pkg = await api.createPackage();
    const put = await send('PUT', `/api/v1/packages/${pkg.id}/files/userinfo.txt`, {}, 'abc', 'user@example.test');
    expect(put.status).toBe(201);
    const { id } = JSON.parse(put.body.toString());

    const download = await send('GET', `/api/v1/files/${id}/download`, {}, undefined, 'user@example.test');
    expect(download.status).toBe(200);
    expect(download.body.toString()).toBe('abc');
    expect(download.headers['x-request-id']).toBeDefined();
    expect(server.output().slice(outputBefore)).not.toContain('the direct route failed');
  });

  it('counts downloads under their route for any Host', async () => {
    const pkg = await api.createPackage();
    const { id } = await (await api.putFile(pkg.id, 'counted.txt', Buffer.from('abc'))).json();
    const before = await requestCount(DOWNLOAD_ROUTE, 'GET', 200);

    for (const host of ['example.test/elsewhere?', 'example.test#', '']) {
      const download = await send('GET', `/api/v1/files/${id}/download`, {}, undefined, host);
      expect(download.status).toBe(200);
      expect(download.body.toString()).toBe('abc');
    }

    expect(await requestCount(DOWNLOAD_ROUTE, 'GET', 200)).toBe(before + 3);
  });

  it('resumes a tus upload whatever the Host', async () => {
    const pkg = await api.createPackage();
    const metadata = `package_id ${Buffer.from(pkg.id).toString('base64')},relative_path ${Buffer.from('odd-host.bin').toString('base64')}`;
    const created = await send('POST', '/api/v1/uploads', { 'tus-resumable': '1.0.0', 'upload-length': '3', 'upload-metadata': metadata }, '', 'example.test');
    expect(created.status).toBe(201);
    const uploadPath = new URL(created.headers.location!).pathname;

    const patchHeaders = { 'tus-resumable': '1.0.0', 'upload-offset': '0', 'content-type': 'application/offset+octet-stream' };
    const patch = await send('PATCH', uploadPath, patchHeaders, 'abc', 'example.test/elsewhere?');
    expect(patch.status).toBe(204);
    expect(patch.headers['upload-offset']).toBe('3');
  });

  it('names the target authority in an absolute-form Location', async () => {
    const pkg = await api.createPackage();
    const metadata = `package_id ${Buffer.from(pkg.id).toString('base64')},relative_path ${Buffer.from('absolute.bin').toString('base64')}`;
    const authority = `127.0.0.1:${server.port}`;
    // RFC 9112 section 3.2.2: a server that receives an absolute-form target ignores the Host header.
    const headers = { 'tus-resumable': '1.0.0', 'upload-length': '3', 'upload-metadata': metadata };
    const created = await send('POST', `http://${authority}/api/v1/uploads`, headers, '', 'ignored.example.test');
    expect(created.status).toBe(201);
    expect(new URL(created.headers.location!).host).toBe(authority);
  });
});

describe('odd tus upload URLs', () => {
  it('ignores a query on the upload URL', async () => {
    const pkg = await api.createPackage();
    const created = await api.request('POST', '/uploads', {
      headers: {
        'tus-resumable': '1.0.0',
        'upload-length': '3',
        'upload-metadata': `package_id ${Buffer.from(pkg.id).toString('base64')},relative_path ${Buffer.from('query.bin').toString('base64')}`,
      },
    });
    expect(created.status).toBe(201);
    const uploadUrl = `${created.headers.get('location')!}?client=test`;
    const authorization = `Bearer ${api.token}`;

    const head = await checkedFetch(uploadUrl, { method: 'HEAD', headers: { authorization, 'tus-resumable': '1.0.0' } });
    expect(head.status).toBe(200);
    expect(head.headers.get('upload-offset')).toBe('0');

    const patch = await checkedFetch(uploadUrl, {
      method: 'PATCH',
      headers: { authorization, 'tus-resumable': '1.0.0', 'upload-offset': '0', 'content-type': 'application/offset+octet-stream' },
      body: 'abc',
    });
    expect(patch.status).toBe(204);
    expect(patch.headers.get('upload-offset')).toBe('3');

    const files = await (await api.get(`/packages/${pkg.id}/files`)).json();
    expect(files.files.map((file: { relative_path: string }) => file.relative_path)).toEqual(['query.bin']);
  });
});
