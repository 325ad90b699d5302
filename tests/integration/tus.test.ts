import { execFileSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ApiClient, problemOf } from '../support/client';
import { createTestEnvironment, startServer, type TestEnvironment, type TestServer } from '../support/server';

const MiB = 1024 * 1024;

function base64(value: string): string {
  return Buffer.from(value, 'utf8').toString('base64');
}

function metadataHeader(packageId: string, relativePath: string, extra = ''): string {
  return `package_id ${base64(packageId)},relative_path ${base64(relativePath)}${extra}`;
}

function createUpload(client: ApiClient, headers: Record<string, string>, body?: BodyInit): Promise<Response> {
  return client.request('POST', '/uploads', { headers: { 'Tus-Resumable': '1.0.0', ...headers }, body });
}

function patchUpload(client: ApiClient, location: string, offset: number, body: BodyInit, headers: Record<string, string> = {}): Promise<Response> {
  return client.request('PATCH', uploadPath(location), {
    headers: { 'Tus-Resumable': '1.0.0', 'Upload-Offset': String(offset), 'Content-Type': 'application/offset+octet-stream', ...headers },
    body,
  });
}

function headUpload(client: ApiClient, location: string): Promise<Response> {
  return client.request('HEAD', uploadPath(location), { headers: { 'Tus-Resumable': '1.0.0' } });
}

function uploadPath(location: string): string {
  return new URL(location).pathname.replace(/^\/api\/v1/, '');
}

async function fileAt(client: ApiClient, packageId: string, relativePath: string): Promise<Record<string, any> | undefined> {
  const response = await client.get(`/packages/${packageId}/files`);
  const body = await response.json();
  return body.files.find((file: Record<string, any>) => file.relative_path === relativePath);
}

/** BLAKE3 of `bytes` as the b3sum tool computes it. */
function b3sum(bytes: Buffer, directory: string): string {
  const file = path.join(directory, `b3sum-${crypto.randomUUID()}`);
  fs.writeFileSync(file, bytes);
  try {
    return execFileSync('/usr/bin/b3sum', ['--no-names', file], { encoding: 'utf8' }).trim();
  } finally {
    fs.rmSync(file);
  }
}

function digestsOf(bytes: Buffer): { sha256: string } {
  return { sha256: crypto.createHash('sha256').update(bytes).digest('hex') };
}

/** Lists every header of a response as "name: value", so tests can check that none carries CR or LF. */
function headerValues(response: Response): string[] {
  return [...response.headers.entries()].map(([name, value]) => `${name}: ${value}`);
}

describe('tus uploads', () => {
  let environment: TestEnvironment;
  let server: TestServer;
  let admin: ApiClient;
  let packageId: string;

  beforeAll(async () => {
    environment = await createTestEnvironment();
    server = await startServer(environment);
    admin = new ApiClient(server.url, environment.adminToken);
    packageId = (await admin.createPackage({ name: 'tus-main' })).id;
  });

  afterAll(async () => {
    await server?.stop();
    await environment?.cleanup();
  });

  it('OPTIONS lists the working extensions', async () => {
    const response = await admin.request('OPTIONS', '/uploads');
    expect(response.status).toBe(204);
    expect(response.headers.get('tus-version')).toBe('1.0.0');
    expect(response.headers.get('tus-extension')).toBe('creation,creation-with-upload,creation-defer-length,termination,expiration,checksum');
    expect(response.headers.get('tus-checksum-algorithm')).toBe('sha1,sha256');
  });

  it('OPTIONS on a malformed upload id gets 404', async () => {
    const response = await admin.request('OPTIONS', '/uploads/not-an-upload-id');
    expect(response.status).toBe(404);
    expect(response.headers.get('content-type')).toBe('application/problem+json');
  });

  it('upload in two chunks becomes a file', async () => {
    const content = crypto.randomBytes(3000);
    const created = await createUpload(admin, { 'Upload-Length': '3000', 'Upload-Metadata': metadataHeader(packageId, 'two/chunks.bin') });
    expect(created.status).toBe(201);
    expect(created.headers.get('upload-expires')).toMatch(/GMT$/);
    const location = created.headers.get('location')!;

    const first = await patchUpload(admin, location, 0, content.subarray(0, 1000));
    expect(first.status).toBe(204);
    expect(first.headers.get('upload-offset')).toBe('1000');
    const second = await patchUpload(admin, location, 1000, content.subarray(1000));
    expect(second.status).toBe(204);
    expect(second.headers.get('upload-offset')).toBe('3000');

    const file = await fileAt(admin, packageId, 'two/chunks.bin');
    expect(file?.size_bytes).toBe(3000);
    expect(file?.digest_sha256_hex).toBe(digestsOf(content).sha256);
    const download = await admin.get(`/files/${file!.id}/download`);
    expect(Buffer.from(await download.arrayBuffer()).equals(content)).toBe(true);
  });

  it('creation with upload and zero length both finish', async () => {
    const content = Buffer.from('hello tus\n');
    const withBody = await createUpload(
      admin,
      { 'Upload-Length': String(content.length), 'Upload-Metadata': metadataHeader(packageId, 'with-body.txt'), 'Content-Type': 'application/offset+octet-stream' },
      content,
    );
    expect(withBody.status).toBe(201);
    expect(withBody.headers.get('upload-offset')).toBe(String(content.length));
    expect((await fileAt(admin, packageId, 'with-body.txt'))?.digest_sha256_hex).toBe(digestsOf(content).sha256);

    const empty = await createUpload(admin, { 'Upload-Length': '0', 'Upload-Metadata': metadataHeader(packageId, 'empty.txt') });
    expect(empty.status).toBe(201);
    expect((await fileAt(admin, packageId, 'empty.txt'))?.size_bytes).toBe(0);
  });

  it('creation checks package, path and duplicates', async () => {
    const unknownPackage = await createUpload(admin, { 'Upload-Length': '1', 'Upload-Metadata': metadataHeader(crypto.randomUUID(), 'a.txt') });
    expect(unknownPackage.status).toBe(404);
    await problemOf(unknownPackage);

    const badPath = await createUpload(admin, { 'Upload-Length': '1', 'Upload-Metadata': metadataHeader(packageId, '../escape.txt') });
    expect(badPath.status).toBe(400);
    await problemOf(badPath);

    const first = await createUpload(admin, { 'Upload-Length': '10', 'Upload-Metadata': metadataHeader(packageId, 'taken.txt') });
    expect(first.status).toBe(201);
    const second = await createUpload(admin, { 'Upload-Length': '10', 'Upload-Metadata': metadataHeader(packageId, 'taken.txt') });
    expect(second.status).toBe(409);
    await problemOf(second);

    const existingFile = await createUpload(admin, { 'Upload-Length': '10', 'Upload-Metadata': metadataHeader(packageId, 'with-body.txt') });
    expect(existingFile.status).toBe(409);

    const finalize = await admin.post(`/packages/${packageId}/finalize`);
    expect(finalize.status).toBe(409);
    await finalize.arrayBuffer();
    expect((await admin.request('DELETE', uploadPath(first.headers.get('location')!), { headers: { 'Tus-Resumable': '1.0.0' } })).status).toBe(204);
  });

  it('checksum mismatch discards the chunk with 460', async () => {
    const content = crypto.randomBytes(512);
    const created = await createUpload(admin, { 'Upload-Length': '512', 'Upload-Metadata': metadataHeader(packageId, 'checksum.bin') });
    const location = created.headers.get('location')!;

    const wrong = crypto.createHash('sha1').update('other bytes').digest('base64');
    const mismatch = await patchUpload(admin, location, 0, content.subarray(0, 256), { 'Upload-Checksum': `sha1 ${wrong}` });
    expect(mismatch.status).toBe(460);
    await problemOf(mismatch);
    expect((await headUpload(admin, location)).headers.get('upload-offset')).toBe('0');

    const unsupported = await patchUpload(admin, location, 0, content.subarray(0, 256), { 'Upload-Checksum': `md5 ${wrong}` });
    expect(unsupported.status).toBe(400);
    await unsupported.arrayBuffer();

    const sha1 = crypto.createHash('sha1').update(content.subarray(0, 256)).digest('base64');
    expect((await patchUpload(admin, location, 0, content.subarray(0, 256), { 'Upload-Checksum': `sha1 ${sha1}` })).status).toBe(204);
    const sha256 = crypto.createHash('sha256').update(content.subarray(256)).digest('base64');
    expect((await patchUpload(admin, location, 256, content.subarray(256), { 'Upload-Checksum': `sha256 ${sha256}` })).status).toBe(204);
    expect((await fileAt(admin, packageId, 'checksum.bin'))?.digest_sha256_hex).toBe(digestsOf(content).sha256);
  });

  it('repeated final PATCH gets 409 and one file', async () => {
    const content = crypto.randomBytes(1024);
    const created = await createUpload(admin, { 'Upload-Length': '1024', 'Upload-Metadata': metadataHeader(packageId, 'lost-response.bin') });
    const location = created.headers.get('location')!;
    const uploadId = location.split('/').pop()!;
    const since = (await admin.events(0)).events.at(-1).sequence;

    expect((await patchUpload(admin, location, 0, content)).status).toBe(204);
    const repeated = await patchUpload(admin, location, 0, content);
    expect(repeated.status).toBe(409);
    expect(repeated.headers.get('upload-offset')).toBe('1024');
    expect((await problemOf(repeated)).expected_offset).toBe(1024);

    const head = await headUpload(admin, location);
    expect(head.status).toBe(200);
    expect(head.headers.get('upload-offset')).toBe('1024');

    const files = (await (await admin.get(`/packages/${packageId}/files`)).json()).files;
    expect(files.filter((file: Record<string, any>) => file.relative_path === 'lost-response.bin')).toHaveLength(1);
    const events = (await admin.events(since)).events;
    expect(events.filter((event) => event.event_type === 'upload.completed' && event.subject_id === uploadId)).toHaveLength(1);
    expect(events.filter((event) => event.event_type === 'file.added' && event.payload.upload_id === uploadId)).toHaveLength(1);
  });

  it('completion keeps the event chain', async () => {
    // The completing PATCH writes upload.completed and file.added in one transaction, each chained to the one before.
    const content = crypto.randomBytes(2048);
    const created = await createUpload(admin, { 'Upload-Length': '2048', 'Upload-Metadata': metadataHeader(packageId, 'chained.bin') });
    const location = created.headers.get('location')!;
    const uploadId = location.split('/').pop()!;
    const since = (await admin.events(0)).events.at(-1).sequence;
    expect((await patchUpload(admin, location, 0, content)).status).toBe(204);

    const events = (await admin.events(since)).events;
    const completed = events.find((event) => event.event_type === 'upload.completed' && event.subject_id === uploadId);
    const added = events.find((event) => event.event_type === 'file.added' && event.payload.upload_id === uploadId);
    expect(added.sequence).toBe(completed.sequence + 1);
    const verified = await (await admin.get(`/events/verify?from=${since}`)).json();
    expect(verified).toMatchObject({ ok: true, first_bad_sequence: null, reason: null });
  });

  it('DELETE terminates an unfinished upload', async () => {
    const created = await createUpload(admin, { 'Upload-Length': '100', 'Upload-Metadata': metadataHeader(packageId, 'terminated.bin') });
    const location = created.headers.get('location')!;
    const uploadId = location.split('/').pop()!;
    expect((await patchUpload(admin, location, 0, Buffer.alloc(40))).status).toBe(204);

    const deleted = await admin.request('DELETE', uploadPath(location), { headers: { 'Tus-Resumable': '1.0.0' } });
    expect(deleted.status).toBe(204);
    expect((await headUpload(admin, location)).status).toBe(410);
    expect(fs.existsSync(path.join(environment.storageRoot, 'uploads', uploadId))).toBe(false);
    expect(fs.existsSync(path.join(environment.storageRoot, 'uploads', `${uploadId}.json`))).toBe(false);
    const events = (await admin.events(0)).events;
    expect(events.some((event) => event.event_type === 'upload.terminated' && event.subject_id === uploadId)).toBe(true);
  });

  it('creation rejects malformed Upload-Metadata', async () => {
    const responses: Response[] = [];
    const keyWithoutValue = await createUpload(admin, { 'Upload-Length': '1', 'Upload-Metadata': metadataHeader(packageId, 'u4/ok.txt', ',is_confidential') });
    responses.push(keyWithoutValue);
    expect(keyWithoutValue.status).toBe(201);

    const notBase64 = await createUpload(admin, { 'Upload-Length': '1', 'Upload-Metadata': `${metadataHeader(packageId, 'u4/a.txt')},media_type @@@` });
    responses.push(notBase64);
    expect(notBase64.status).toBe(400);
    await problemOf(notBase64.clone());

    const duplicateKey = await createUpload(admin, {
      'Upload-Length': '1',
      'Upload-Metadata': `${metadataHeader(packageId, 'u4/b.txt')},relative_path ${base64('u4/c.txt')}`,
    });
    responses.push(duplicateKey);
    expect(duplicateKey.status).toBe(400);

    const headerInjection = await createUpload(admin, {
      'Upload-Length': '1',
      'Upload-Metadata': metadataHeader(packageId, 'u4/d.txt\r\nX-Injected: yes'),
    });
    responses.push(headerInjection);
    expect(headerInjection.status).toBe(400);
    expect(headerInjection.headers.get('x-injected')).toBeNull();

    const chineseName = '报告.txt';
    const content = Buffer.from('季度报告\n');
    const chinese = await createUpload(
      admin,
      {
        'Upload-Length': String(content.length),
        'Upload-Metadata': `${metadataHeader(packageId, `u4/${chineseName}`)},filename ${base64(chineseName)},media_type ${base64('text/plain; charset=utf-8')}`,
        'Content-Type': 'application/offset+octet-stream',
      },
      content,
    );
    responses.push(chinese);
    expect(chinese.status).toBe(201);
    const head = await headUpload(admin, chinese.headers.get('location')!);
    responses.push(head);

    const file = await fileAt(admin, packageId, `u4/${chineseName}`);
    const download = await admin.get(`/files/${file!.id}/download`);
    responses.push(download);
    expect(download.headers.get('content-disposition')).toBe(`attachment; filename="__.txt"; filename*=UTF-8''%E6%8A%A5%E5%91%8A.txt`);
    expect(Buffer.from(await download.arrayBuffer()).equals(content)).toBe(true);

    for (const response of responses) {
      for (const line of headerValues(response)) expect(line).not.toMatch(/[\r\n]/);
    }
  });

  it('encoded traversal in upload ids', async () => {
    const outside = path.join(environment.storageRoot, 'outside.txt');
    fs.mkdirSync(path.join(environment.storageRoot, 'uploads'), { recursive: true });
    fs.writeFileSync(outside, 'do not touch\n');
    const headers = { 'Tus-Resumable': '1.0.0' };

    const deleted = await admin.request('DELETE', '/uploads/..%2Foutside.txt', { headers });
    expect(deleted.status).toBe(404);
    await problemOf(deleted);
    const backslash = await admin.request('HEAD', '/uploads/..%5Coutside.txt', { headers });
    expect(backslash.status).toBe(404);
    const nul = await admin.request('PATCH', '/uploads/x%00y', {
      headers: { ...headers, 'Upload-Offset': '0', 'Content-Type': 'application/offset+octet-stream' },
      body: 'x',
    });
    expect(nul.status).toBe(404);
    await nul.arrayBuffer();
    const badEscape = await admin.request('HEAD', '/uploads/%', { headers });
    expect(badEscape.status).toBe(400);
    expect(badEscape.headers.get('content-type')).toBe('application/problem+json');
    expect(badEscape.headers.get('tus-resumable')).toBe('1.0.0');
    expect(await badEscape.text()).toBe('');

    expect(fs.readFileSync(outside, 'utf8')).toBe('do not touch\n');
  });

  it('malformed percent escapes get 400 on any route', async () => {
    const cases = [
      { path: '/packages/%zz', segment: '%zz' },
      { path: '/files/%E0%A4%A/download', segment: '%E0%A4%A' },
      { path: '/packages/%C0%AF', segment: '%C0%AF' },
    ];
    for (const { path: requestPath, segment } of cases) {
      const response = await admin.get(requestPath, { headers: { 'X-Request-Id': 'malformed-escape-check' } });
      expect(response.status, requestPath).toBe(400);
      expect(response.headers.get('x-request-id'), requestPath).toBe('malformed-escape-check');
      const problem = await problemOf(response);
      expect(problem.status).toBe(400);
      expect(problem.detail).toContain(JSON.stringify(`/api/v1${requestPath}`));
      expect(problem.errors).toHaveLength(1);
      expect(problem.errors[0].field).toBe('(path)');
      expect(problem.errors[0].rule).toBe('percent_encoding');
      expect(problem.errors[0].message).toContain(JSON.stringify(segment));
    }

    const head = await admin.request('HEAD', '/files/%E0%A4%A/download');
    expect(head.status).toBe(400);
    expect(head.headers.get('content-type')).toBe('application/problem+json');
    expect(head.headers.get('tus-resumable')).toBeNull();
    expect(await head.text()).toBe('');
  });

  it('request targets other than a path', async () => {
    const send = (method: string, target: string, host = '127.0.0.1') =>
      new Promise<{ status: number; headers: http.IncomingHttpHeaders; body: string }>((resolve, reject) => {
        const url = new URL(server.url);
        const request = http.request({ host: url.hostname, port: url.port, method, path: target, headers: { Host: host } }, (response) => {
          let body = '';
          response.setEncoding('utf8');
          response.on('data', (chunk) => (body += chunk));
          response.on('end', () => resolve({ status: response.statusCode!, headers: response.headers, body }));
        });
        request.on('error', reject);
        request.end();
      });

    const options = await send('OPTIONS', '*');
    expect(options.status).toBe(204);
    expect(options.headers.allow).toContain('GET');

    const star = await send('GET', '*');
    expect(star.status).toBe(400);
    expect(star.headers['content-type']).toBe('application/problem+json');
    expect(JSON.parse(star.body).errors[0].rule).toBe('request_target');

    const absolute = await send('GET', `${server.url}/api/v1/health`, 'ignored.example');
    expect(absolute.status).toBe(200);
    expect(JSON.parse(absolute.body).status).toBe('ok');

    const absoluteBadEscape = await send('GET', `${server.url}/api/v1/packages/%zz`);
    expect(absoluteBadEscape.status).toBe(400);
    expect(JSON.parse(absoluteBadEscape.body).errors[0].rule).toBe('percent_encoding');
  });

  it('valid percent escapes reach the route', async () => {
    const put = await admin.request('PUT', `/packages/${packageId}/files/escaped%20name%2B%C3%A9.txt`, { body: 'escaped\n' });
    expect(put.status).toBe(201);
    const record = await put.json();
    expect(record.relative_path).toBe('escaped name+é.txt');

    const download = await admin.get(`/files/${record.id}/download`);
    expect(download.status).toBe(200);
    expect(await download.text()).toBe('escaped\n');
  });

  it('12 MiB bodies pass untruncated', async () => {
    const health = await admin.get('/health');
    await health.arrayBuffer();
    expect(health.headers.get('x-frame-options')).toBe('DENY');

    const chunk = crypto.randomBytes(12 * MiB);
    const created = await createUpload(admin, { 'Upload-Length': String(chunk.length), 'Upload-Metadata': metadataHeader(packageId, 'u6/tus.bin') });
    expect(created.headers.get('x-frame-options')).toBeNull();
    const patched = await patchUpload(admin, created.headers.get('location')!, 0, chunk);
    expect(patched.status).toBe(204);
    expect(patched.headers.get('upload-offset')).toBe(String(chunk.length));
    const tusFile = await fileAt(admin, packageId, 'u6/tus.bin');
    expect(tusFile?.size_bytes).toBe(chunk.length);
    expect(tusFile?.digest_sha256_hex).toBe(digestsOf(chunk).sha256);

    const form = new FormData();
    form.set('relative_path', 'u6/multipart.bin');
    form.set('file', new Blob([chunk]), 'multipart.bin');
    const posted = await admin.request('POST', `/packages/${packageId}/files`, { body: form });
    expect(posted.status).toBe(201);
    const record = await posted.json();
    expect(record.size_bytes).toBe(chunk.length);
    expect(record.digest_sha256_hex).toBe(digestsOf(chunk).sha256);
  });

  it('aborted PATCH releases its lock', async () => {
    const source = crypto.randomBytes(8 * MiB);
    const created = await createUpload(admin, { 'Upload-Length': String(source.length), 'Upload-Metadata': metadataHeader(packageId, 'u2.bin') });
    const location = created.headers.get('location')!;
    const uploadId = location.split('/').pop()!;

    const controller = new AbortController();
    let sent = 0;
    const body = new ReadableStream<Uint8Array>({
      async pull(stream) {
        if (sent >= 3 * MiB) {
          await sleep(200);
          controller.abort();
          return;
        }
        stream.enqueue(source.subarray(sent, sent + 256 * 1024));
        sent += 256 * 1024;
      },
    });
    const aborted = admin
      .request('PATCH', uploadPath(location), {
        headers: { 'Tus-Resumable': '1.0.0', 'Upload-Offset': '0', 'Content-Type': 'application/offset+octet-stream', 'Content-Length': String(source.length) },
        body,
        signal: controller.signal,
      })
      .catch((error: unknown) => error);
    await aborted;

    const head = await headUpload(admin, location);
    expect(head.status).toBe(200);
    expect(head.headers.get('cache-control')).toBe('no-store');
    const offset = Number(head.headers.get('upload-offset'));
    expect(offset).toBeGreaterThanOrEqual(0);
    expect(offset).toBeLessThanOrEqual(3 * MiB);
    expect(fs.statSync(path.join(environment.storageRoot, 'uploads', uploadId)).size).toBe(offset);

    // The resumed PATCH needs the upload's lock, so it succeeds only once the aborted one released it.
    const resumed = await patchUpload(admin, location, offset, source.subarray(offset));
    expect(resumed.status).toBe(204);
    const file = await fileAt(admin, packageId, 'u2.bin');
    expect(file?.digest_sha256_hex).toBe(digestsOf(source).sha256);
    expect(file?.digest_primary_hex).toBe(b3sum(source, environment.dir));
  });

  it.each([64 * 1024, 2 * MiB])('full staging disk gets 503 (%i bytes)', async (size) => {
    const content = crypto.randomBytes(size);
    const created = await createUpload(admin, { 'Upload-Length': String(content.length), 'Upload-Metadata': metadataHeader(packageId, `full-disk-${size}.bin`) });
    expect(created.status).toBe(201);
    const location = created.headers.get('location')!;
    const staged = path.join(environment.storageRoot, 'uploads', location.split('/').pop()!);

    // /dev/full fails every write with ENOSPC, as a staging file on a full disk does.
    fs.rmSync(staged);
    fs.symlinkSync('/dev/full', staged);
    const failed = await patchUpload(admin, location, 0, content);
    expect(failed.status).toBe(503);
    const problem = await problemOf(failed);
    expect(problem.title).toBe('Upload staging unavailable');
    expect(problem.detail).toContain('no space left on the file system (ENOSPC)');

    // Once there is room again, the upload resumes from the offset that HEAD reports.
    fs.rmSync(staged);
    fs.writeFileSync(staged, '');
    const head = await headUpload(admin, location);
    expect(head.headers.get('upload-offset')).toBe('0');
    const resumed = await patchUpload(admin, location, 0, content);
    expect(resumed.status).toBe(204);
    const file = await fileAt(admin, packageId, `full-disk-${size}.bin`);
    expect(file?.digest_sha256_hex).toBe(digestsOf(content).sha256);
  });

  it('tus body of another type gets 415', async () => {
    const created = await createUpload(admin, { 'Upload-Length': '10', 'Upload-Metadata': metadataHeader(packageId, 'media-type.bin') });
    expect(created.status).toBe(201);
    const location = created.headers.get('location')!;

    for (const contentType of ['text/plain', 'application/octet-stream']) {
      const patch = await patchUpload(admin, location, 0, Buffer.alloc(10), { 'Content-Type': contentType });
      expect(patch.status).toBe(415);
      expect(patch.headers.get('tus-resumable')).toBe('1.0.0');
      expect((await problemOf(patch)).detail).toBe(
        `A tus PATCH with a body must have Content-Type: application/offset+octet-stream; this request has ${JSON.stringify(contentType)}.`,
      );
    }

    const withoutType = await admin.request('PATCH', uploadPath(location), {
      headers: { 'Tus-Resumable': '1.0.0', 'Upload-Offset': '0' },
      body: new Blob([Buffer.alloc(10)]),
    });
    expect(withoutType.status).toBe(415);

    const creation = await createUpload(
      admin,
      { 'Upload-Length': '10', 'Upload-Metadata': metadataHeader(packageId, 'media-type-post.bin'), 'Content-Type': 'text/plain' },
      Buffer.alloc(10),
    );
    expect(creation.status).toBe(415);

    // Some HTTP clients send a Content-Type with every POST, also without a body.
    const emptyCreation = await createUpload(admin, {
      'Upload-Length': '10',
      'Upload-Metadata': metadataHeader(packageId, 'media-type-empty.bin'),
      'Content-Type': 'application/x-www-form-urlencoded',
    });
    expect(emptyCreation.status).toBe(201);

    // None of the rejected PATCHes stored a byte.
    const head = await headUpload(admin, location);
    expect(head.headers.get('upload-offset')).toBe('0');
  });

  // Media types compare without regard to case (RFC 9110 section 8.3.1), but @tus/server compares its own spelling.
  it('tus body type in another spelling is stored', async () => {
    const spelling = 'Application/Offset+Octet-Stream; charset=binary';
    const created = await createUpload(admin, { 'Upload-Length': '10', 'Upload-Metadata': metadataHeader(packageId, 'spelling-patch.bin') });
    expect(created.status).toBe(201);
    const patch = await patchUpload(admin, created.headers.get('location')!, 0, Buffer.from('0123456789'), { 'Content-Type': spelling });
    expect(patch.status).toBe(204);
    expect(patch.headers.get('upload-offset')).toBe('10');
    expect((await fileAt(admin, packageId, 'spelling-patch.bin'))?.size_bytes).toBe(10);

    const creation = await createUpload(
      admin,
      { 'Upload-Length': '10', 'Upload-Metadata': metadataHeader(packageId, 'spelling-post.bin'), 'Content-Type': spelling },
      Buffer.from('abcdefghij'),
    );
    expect(creation.status).toBe(201);
    expect(creation.headers.get('upload-offset')).toBe('10');
    expect((await fileAt(admin, packageId, 'spelling-post.bin'))?.size_bytes).toBe(10);
  });

  it('token challenges on tus routes', async () => {
    const readOnly = await admin.post('/tokens', { name: 'tus-reader', scopes: ['read'] });
    const readToken = (await readOnly.json()).token as string;
    const revokedResponse = await admin.post('/tokens', { name: 'tus-former', scopes: ['read', 'write'] });
    const revokedToken = (await revokedResponse.json()).token as string;
    expect((await admin.request('DELETE', '/tokens/tus-former')).status).toBe(204);

    const created = await createUpload(admin, { 'Upload-Length': '10', 'Upload-Metadata': metadataHeader(packageId, 'a1.bin') });
    const location = created.headers.get('location')!;
    const file = await fileAt(admin, packageId, 'with-body.txt');
    const requests: [string, (client: ApiClient) => Promise<Response>][] = [
      ['download', (client) => client.get(`/files/${file!.id}/download`)],
      ['creation', (client) => createUpload(client, { 'Upload-Length': '10', 'Upload-Metadata': metadataHeader(packageId, 'a1-other.bin') })],
      ['PATCH', (client) => patchUpload(client, location, 0, Buffer.alloc(10))],
    ];

    for (const [name, send] of requests) {
      const anonymous = await send(admin.withToken(undefined));
      expect(anonymous.status, name).toBe(401);
      expect(anonymous.headers.get('www-authenticate'), name).toBe('Bearer realm="artifact-store"');
      expect((await problemOf(anonymous)).status, name).toBe(401);

      const revoked = await send(admin.withToken(revokedToken));
      expect(revoked.status, name).toBe(401);
      expect(revoked.headers.get('www-authenticate'), name).toContain('error="invalid_token"');
      await problemOf(revoked);
    }
    for (const [name, send] of requests.slice(1)) {
      const reader = await send(admin.withToken(readToken));
      expect(reader.status, name).toBe(403);
      expect(reader.headers.get('www-authenticate'), name).toContain('error="insufficient_scope"');
      await problemOf(reader);
    }
    expect((await headUpload(admin, location)).headers.get('upload-offset')).toBe('0');
  });
});

describe('tus size limit', () => {
  let environment: TestEnvironment;
  let server: TestServer;
  let admin: ApiClient;
  let packageId: string;

  beforeAll(async () => {
    environment = await createTestEnvironment({ MAX_FILE_SIZE_BYTES: '100' });
    server = await startServer(environment);
    admin = new ApiClient(server.url, environment.adminToken);
    packageId = (await admin.createPackage({ name: 'tus-limit' })).id;
  });

  afterAll(async () => {
    await server?.stop();
    await environment?.cleanup();
  });

  it('deferred length cannot pass limit', async () => {
    const tooLong = await createUpload(admin, { 'Upload-Length': '200', 'Upload-Metadata': metadataHeader(packageId, 'declared.bin') });
    expect(tooLong.status).toBe(413);
    await problemOf(tooLong);

    const created = await createUpload(admin, { 'Upload-Defer-Length': '1', 'Upload-Metadata': metadataHeader(packageId, 'deferred.bin') });
    expect(created.status).toBe(201);
    const location = created.headers.get('location')!;
    const head = await headUpload(admin, location);
    expect(head.headers.get('upload-defer-length')).toBe('1');
    expect(head.headers.get('upload-length')).toBeNull();

    const sized = await patchUpload(admin, location, 0, Buffer.alloc(200, 1));
    expect(sized.status).toBe(413);
    await problemOf(sized);
    const chunked = await patchUpload(
      admin,
      location,
      0,
      new ReadableStream<Uint8Array>({
        start(stream) {
          stream.enqueue(new Uint8Array(200).fill(2));
          stream.close();
        },
      }),
    );
    expect(chunked.status).toBe(413);
    await chunked.arrayBuffer();
    const offset = Number((await headUpload(admin, location)).headers.get('upload-offset'));
    expect(offset).toBeLessThanOrEqual(100);

    const shorter = await patchUpload(admin, location, offset, Buffer.alloc(0), { 'Upload-Length': String(Math.max(offset - 1, 0)) });
    expect(shorter.status).toBe(offset > 0 ? 400 : 204);
    await shorter.arrayBuffer();
  });

  it('every 413 names limit_bytes', async () => {
    const declared = await admin.putFile(packageId, 'declared-put.bin', Buffer.alloc(200));
    const streamed = await admin.putFile(
      packageId,
      'streamed-put.bin',
      new ReadableStream<Uint8Array>({
        start(stream) {
          stream.enqueue(new Uint8Array(200));
          stream.close();
        },
      }),
    );
    const form = new FormData();
    form.set('relative_path', 'multipart.bin');
    form.set('file', new Blob([Buffer.alloc(200)]), 'multipart.bin');
    const multipart = await admin.request('POST', `/packages/${packageId}/files`, { body: form });
    for (const response of [declared, streamed, multipart]) {
      expect(response.status).toBe(413);
      expect((await problemOf(response)).limit_bytes).toBe(100);
    }
  });

  it('length below offset gets 400', async () => {
    const created = await createUpload(admin, { 'Upload-Defer-Length': '1', 'Upload-Metadata': metadataHeader(packageId, 'shrink.bin') });
    const location = created.headers.get('location')!;
    expect((await patchUpload(admin, location, 0, Buffer.alloc(50, 3))).status).toBe(204);
    const shorter = await patchUpload(admin, location, 50, Buffer.alloc(0), { 'Upload-Length': '10' });
    expect(shorter.status).toBe(400);
    await problemOf(shorter);
    expect((await headUpload(admin, location)).headers.get('upload-offset')).toBe('50');

    const declared = await patchUpload(admin, location, 50, Buffer.alloc(10, 4), { 'Upload-Length': '60' });
    expect(declared.status).toBe(204);
    expect((await fileAt(admin, packageId, 'shrink.bin'))?.size_bytes).toBe(60);
  });
});

describe('tus expiry', () => {
  let environment: TestEnvironment;
  let server: TestServer;
  let admin: ApiClient;
  let packageId: string;

  beforeAll(async () => {
    environment = await createTestEnvironment({ UPLOAD_EXPIRY_SECONDS: '2', SWEEP_INTERVAL_SECONDS: '1' });
    server = await startServer(environment);
    admin = new ApiClient(server.url, environment.adminToken);
    packageId = (await admin.createPackage({ name: 'tus-expiry' })).id;
  });

  afterAll(async () => {
    await server?.stop();
    await environment?.cleanup();
  });

  it('cleanup removes expired unfinished uploads only', async () => {
    const unfinished = await createUpload(admin, { 'Upload-Length': '100', 'Upload-Metadata': metadataHeader(packageId, 'expires.bin') });
    const unfinishedLocation = unfinished.headers.get('location')!;
    const unfinishedId = unfinishedLocation.split('/').pop()!;
    expect((await patchUpload(admin, unfinishedLocation, 0, Buffer.alloc(10))).status).toBe(204);

    const finished = await createUpload(admin, { 'Upload-Length': '5', 'Upload-Metadata': metadataHeader(packageId, 'kept.bin') });
    const finishedLocation = finished.headers.get('location')!;
    expect((await patchUpload(admin, finishedLocation, 0, Buffer.from('kept\n'))).status).toBe(204);

    await sleep(4000);
    expect((await headUpload(admin, unfinishedLocation)).status).toBe(410);
    const late = await patchUpload(admin, unfinishedLocation, 10, Buffer.alloc(10));
    expect(late.status).toBe(410);
    await problemOf(late);
    expect(fs.existsSync(path.join(environment.storageRoot, 'uploads', unfinishedId))).toBe(false);
    expect(fs.existsSync(path.join(environment.storageRoot, 'uploads', `${unfinishedId}.json`))).toBe(false);

    const events = (await admin.events(0)).events;
    expect(events.filter((event) => event.event_type === 'upload.expired').map((event) => event.subject_id)).toEqual([unfinishedId]);
    expect((await headUpload(admin, finishedLocation)).status).toBe(200);
    const kept = await fileAt(admin, packageId, 'kept.bin');
    expect(kept?.size_bytes).toBe(5);
    expect((await admin.get(`/files/${kept!.id}/download`)).status).toBe(200);

    const again = await createUpload(admin, { 'Upload-Length': '1', 'Upload-Metadata': metadataHeader(packageId, 'expires.bin') });
    expect(again.status).toBe(201);
  });
});

describe('tus Location behind a TLS proxy', () => {
  const forwarded = { 'X-Forwarded-Proto': 'https', 'X-Forwarded-Host': 'registry.example' };

  async function locationOf(extraEnv: Record<string, string>): Promise<string> {
    const environment = await createTestEnvironment(extraEnv);
    const server = await startServer(environment);
    try {
      const admin = new ApiClient(server.url, environment.adminToken);
      const pkg = await admin.createPackage({ name: 'tus-proxy' });
      const created = await createUpload(admin, { 'Upload-Length': '1', 'Upload-Metadata': metadataHeader(pkg.id, 'proxied.bin'), ...forwarded });
      expect(created.status).toBe(201);
      return created.headers.get('location')!;
    } finally {
      await server.stop();
      await environment.cleanup();
    }
  }

  it('ignores forwarded headers by default', async () => {
    expect(await locationOf({})).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/api\/v1\/uploads\/[0-9a-f]{32}$/);
  });

  it('builds an https Location when trusted', async () => {
    expect(await locationOf({ TRUST_FORWARDED_HEADERS: 'true' })).toMatch(/^https:\/\/registry\.example\/api\/v1\/uploads\/[0-9a-f]{32}$/);
  });
});

describe('tus upload staged in full without a file', () => {
  let environment: TestEnvironment;
  let server: TestServer;
  let admin: ApiClient;

  beforeAll(async () => {
    environment = await createTestEnvironment();
    server = await startServer(environment);
    admin = new ApiClient(server.url, environment.adminToken);
  });

  afterAll(async () => {
    await server?.stop();
    await environment?.cleanup();
  });

  it('records the file before HEAD reports it complete', async () => {
    const pkg = await admin.createPackage({ name: 'tus-staged' });
    const created = await createUpload(admin, { 'Upload-Length': '5', 'Upload-Metadata': metadataHeader(pkg.id, 'staged.bin') });
    const uploadId = created.headers.get('location')!.split('/').pop()!;
    // What a PATCH leaves when it staged the last byte and then failed before the commit: the client left
    // before the end of a chunked body, or the process died.
    fs.writeFileSync(path.join(environment.storageRoot, 'uploads', uploadId), 'hello');

    // tus-js-client takes Upload-Offset equal to Upload-Length on HEAD as a finished upload.
    const head = await headUpload(admin, created.headers.get('location')!);
    expect(head.status).toBe(200);
    expect(head.headers.get('upload-offset')).toBe('5');
    const file = await fileAt(admin, pkg.id, 'staged.bin');
    expect(file?.size_bytes).toBe(5);
    expect(file?.digest_sha256_hex).toBe(digestsOf(Buffer.from('hello')).sha256);
  });
});
