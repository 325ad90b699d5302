import http from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ApiClient, checkedFetch } from '../support/client';
import { createTestEnvironment, startServer, type TestEnvironment, type TestServer } from '../support/server';

// Requests that a hostile or careless client sends to the routes that scripts/server.mjs serves without
// Next.js: odd Host headers and absolute-form targets. The Host value ends up in the request URL that the
// route handlers, the tus library and the HTTP metrics read.

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
  body: string;
}

/**
 * Sends one request over a new connection with exactly the given request target and Host header, which
 * fetch does not allow, and collects the response.
 */
function exchange(method: string, target: string, host: string, headers: Record<string, string> = {}, body = ''): Promise<RawResponse> {
  return new Promise((resolve, reject) => {
    const request = http.request(
      { host: '127.0.0.1', port: server.port, method, path: target, agent: false, setHost: false, headers: { host, authorization: `Bearer ${api.token}`, ...headers } },
      (response) => {
        const chunks: Buffer[] = [];
        response.on('data', (chunk: Buffer) => chunks.push(chunk));
        response.on('end', () => resolve({ status: response.statusCode!, headers: response.headers, body: Buffer.concat(chunks).toString('utf8') }));
        response.on('error', reject);
      },
    );
    request.on('error', reject);
    request.end(body);
  });
}

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
    const pkg = await api.createPackage();
    const put = await exchange('PUT', `/api/v1/packages/${pkg.id}/files/userinfo.txt`, 'user@example.test', {}, 'abc');
    expect(put.status).toBe(201);
    const { id } = JSON.parse(put.body);

    const download = await exchange('GET', `/api/v1/files/${id}/download`, 'user@example.test');
    expect(download.status).toBe(200);
    expect(download.body).toBe('abc');
    expect(download.headers['x-request-id']).toBeDefined();
    expect(server.output()).not.toContain('the direct route failed');
  });

  it('counts downloads under their route for any Host', async () => {
    const pkg = await api.createPackage();
    const { id } = await (await api.putFile(pkg.id, 'counted.txt', Buffer.from('abc'))).json();
    const before = await requestCount(DOWNLOAD_ROUTE, 'GET', 200);

    for (const host of ['example.test/elsewhere?', 'example.test#', '']) {
      const download = await exchange('GET', `/api/v1/files/${id}/download`, host);
      expect(download.status).toBe(200);
      expect(download.body).toBe('abc');
    }

    expect(await requestCount(DOWNLOAD_ROUTE, 'GET', 200)).toBe(before + 3);
  });

  it('resumes a tus upload whatever the Host', async () => {
    const pkg = await api.createPackage();
    const metadata = `package_id ${Buffer.from(pkg.id).toString('base64')},relative_path ${Buffer.from('odd-host.bin').toString('base64')}`;
    const created = await exchange('POST', '/api/v1/uploads', 'example.test', {
      'tus-resumable': '1.0.0',
      'upload-length': '3',
      'upload-metadata': metadata,
    });
    expect(created.status).toBe(201);
    const uploadPath = new URL(created.headers.location!).pathname;

    const patch = await exchange(
      'PATCH',
      uploadPath,
      'example.test/elsewhere?',
      { 'tus-resumable': '1.0.0', 'upload-offset': '0', 'content-type': 'application/offset+octet-stream' },
      'abc',
    );
    expect(patch.status).toBe(204);
    expect(patch.headers['upload-offset']).toBe('3');
  });

  it('names the target authority in an absolute-form Location', async () => {
    const pkg = await api.createPackage();
    const metadata = `package_id ${Buffer.from(pkg.id).toString('base64')},relative_path ${Buffer.from('absolute.bin').toString('base64')}`;
    const authority = `127.0.0.1:${server.port}`;
    // RFC 9112 section 3.2.2: a server that receives an absolute-form target ignores the Host header.
    const created = await exchange('POST', `http://${authority}/api/v1/uploads`, 'ignored.example.test', {
      'tus-resumable': '1.0.0',
      'upload-length': '3',
      'upload-metadata': metadata,
    });
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
