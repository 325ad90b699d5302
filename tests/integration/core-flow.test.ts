import crypto from 'node:crypto';
import http from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decodeCbor } from '@/server/encoding/cbor';
import { blake3Hex } from '@/server/digest/blake3-hex';
import { ApiClient, checkedFetch, problemOf } from '../support/client';
import { createTestEnvironment, startServer, type TestEnvironment, type TestServer } from '../support/server';

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

const sha256 = (bytes: Uint8Array) => crypto.createHash('sha256').update(bytes).digest('hex');

describe('package life cycle over HTTP', () => {
  it('creates, uploads, finalizes and serves a manifest whose digest is BLAKE3 of its bytes', async () => {
    const pkg = await api.createPackage({ metadata: { commit: 'abc123', build: 42 } });
    expect(pkg.status).toBe('open');
    expect(pkg.created_by).toBe('test-admin');

    const readme = Buffer.from('hello artifact-store\n');
    const put = await api.putFile(pkg.id, 'docs/README.txt', readme, 'text/plain; charset=utf-8');
    expect(put.status).toBe(201);
    const file = await put.json();
    expect(file.size_bytes).toBe(readme.length);
    expect(file.digest_sha256_hex).toBe(sha256(readme));
    expect(file.digest_primary_hex).toBe(blake3Hex(readme));
    expect(file.content_address).toBe(`blake3:${blake3Hex(readme)}`);
    expect(file.media_type).toBe('text/plain; charset=utf-8');

    const form = new FormData();
    form.set('relative_path', 'bin/tool');
    form.set('media_type', 'application/octet-stream');
    const binary = crypto.randomBytes(300_000);
    form.set('file', new Blob([binary]), 'tool');
    const posted = await api.request('POST', `/packages/${pkg.id}/files`, { body: form });
    expect(posted.status).toBe(201);
    expect((await posted.json()).digest_sha256_hex).toBe(sha256(binary));

    const listed = await (await api.get(`/packages/${pkg.id}/files`)).json();
    expect(listed.files.map((item: any) => item.relative_path)).toEqual(['bin/tool', 'docs/README.txt']);

    const finalized = await api.post(`/packages/${pkg.id}/finalize`);
    expect(finalized.status).toBe(200);
    const record = await finalized.json();
    expect(record.status).toBe('finalized');
    expect(record.manifest_digest).toMatch(/^blake3:[0-9a-f]{64}$/);

    const first = await api.get(`/packages/${pkg.id}/manifest`);
    expect(first.status).toBe(200);
    expect(first.headers.get('content-type')).toBe('application/cbor');
    const cbor = new Uint8Array(await first.arrayBuffer());
    expect(`blake3:${blake3Hex(cbor)}`).toBe(record.manifest_digest);
    expect(first.headers.get('etag')).toBe(`"${record.manifest_digest}"`);
    const second = new Uint8Array(await (await api.get(`/packages/${pkg.id}/manifest`)).arrayBuffer());
    expect(Buffer.from(second).equals(Buffer.from(cbor))).toBe(true);

    const manifest = decodeCbor(cbor) as any;
    expect(manifest.file_count).toBe(2);
    expect(manifest.files.map((item: any) => item.relative_path)).toEqual(['bin/tool', 'docs/README.txt']);
    expect(manifest.package.metadata).toEqual({ commit: 'abc123', build: 42 });

    const json = await api.get(`/packages/${pkg.id}/manifest.json`);
    expect(json.status).toBe(200);
    expect(await json.json()).toEqual(manifest);

    const late = await api.putFile(pkg.id, 'late.txt', 'too late');
    expect(late.status).toBe(409);
    expect((await problemOf(late)).package_status).toBe('finalized');

    const deleted = await api.request('DELETE', `/packages/${pkg.id}`);
    expect(deleted.status).toBe(409);
  });

  it('answers 409 for the manifest of an open package', async () => {
    const pkg = await api.createPackage();
    const response = await api.get(`/packages/${pkg.id}/manifest`);
    expect(response.status).toBe(409);
    await problemOf(response);
  });

  it('stores identical content once and rejects a duplicate path', async () => {
    const pkg = await api.createPackage();
    const bytes = crypto.randomBytes(5000);
    const a = await (await api.putFile(pkg.id, 'a.bin', bytes)).json();
    const b = await (await api.putFile(pkg.id, 'copy/b.bin', bytes)).json();
    expect(a.content_address).toBe(b.content_address);
    expect(a.storage[0].object_key).toBe(b.storage[0].object_key);

    const again = await api.putFile(pkg.id, 'a.bin', 'other bytes');
    expect(again.status).toBe(409);
    expect((await problemOf(again)).path).toBe('a.bin');
  });

  it('deletes an open package and forgets it', async () => {
    const pkg = await api.createPackage();
    expect((await api.putFile(pkg.id, 'x.txt', 'x')).status).toBe(201);
    expect((await api.request('DELETE', `/packages/${pkg.id}`)).status).toBe(204);
    expect((await api.get(`/packages/${pkg.id}`)).status).toBe(404);
  });
});

describe('downloads', () => {
  let fileId: string;
  const content = Buffer.from('0123456789abcdefghijklmnopqrstuvwxyz');

  beforeAll(async () => {
    const pkg = await api.createPackage();
    const response = await api.putFile(pkg.id, 'reports/报告.txt', content, 'text/plain');
    fileId = (await response.json()).id;
  });

  it('serves the whole file with a strong ETag and an RFC 8187 file name', async () => {
    const response = await api.get(`/files/${fileId}/download`);
    expect(response.status).toBe(200);
    expect(Buffer.from(await response.arrayBuffer()).equals(content)).toBe(true);
    expect(response.headers.get('etag')).toBe(`"blake3:${blake3Hex(content)}"`);
    expect(response.headers.get('accept-ranges')).toBe('bytes');
    expect(response.headers.get('content-disposition')).toBe(`attachment; filename="__.txt"; filename*=UTF-8''%E6%8A%A5%E5%91%8A.txt`);
  });

  it('serves single, suffix and multiple ranges', async () => {
    const single = await api.get(`/files/${fileId}/download`, { headers: { range: 'bytes=2-5' } });
    expect(single.status).toBe(206);
    expect(single.headers.get('content-range')).toBe(`bytes 2-5/${content.length}`);
    expect(await single.text()).toBe('2345');

    const suffix = await api.get(`/files/${fileId}/download`, { headers: { range: 'bytes=-3' } });
    expect(suffix.status).toBe(206);
    expect(await suffix.text()).toBe('xyz');

    const multiple = await api.get(`/files/${fileId}/download`, { headers: { range: 'bytes=0-1,10-11' } });
    expect(multiple.status).toBe(206);
    expect(multiple.headers.get('content-type')).toMatch(/^multipart\/byteranges; boundary=/);
    const body = await multiple.text();
    expect(body).toContain('Content-Range: bytes 0-1/36');
    expect(body).toContain('Content-Range: bytes 10-11/36');
  });

  it('answers 416 with the size for an unsatisfiable range', async () => {
    const response = await api.get(`/files/${fileId}/download`, { headers: { range: 'bytes=100-200' } });
    expect(response.status).toBe(416);
    expect(response.headers.get('content-range')).toBe(`bytes */${content.length}`);
    await problemOf(response);
  });

  it('answers 304 to a matching If-None-Match and ignores a stale If-Range', async () => {
    const etag = `"blake3:${blake3Hex(content)}"`;
    const notModified = await api.get(`/files/${fileId}/download`, { headers: { 'if-none-match': etag } });
    expect(notModified.status).toBe(304);
    const stale = await api.get(`/files/${fileId}/download`, { headers: { range: 'bytes=0-0', 'if-range': '"blake3:00"' } });
    expect(stale.status).toBe(200);
    expect((await stale.arrayBuffer()).byteLength).toBe(content.length);
  });

  it('sends text files without gzip', async () => {
    // fetch decodes gzip by itself, so the bytes on the wire are read with node:http.
    const rawGet = (path: string, headers: Record<string, string>) =>
      new Promise<{ status: number; headers: http.IncomingHttpHeaders; body: Buffer }>((resolve, reject) => {
        const request = http.get(api.url(path), { headers: { authorization: `Bearer ${api.token}`, 'accept-encoding': 'gzip', ...headers } }, (response) => {
          const chunks: Buffer[] = [];
          response.on('data', (chunk: Buffer) => chunks.push(chunk));
          response.on('end', () => resolve({ status: response.statusCode!, headers: response.headers, body: Buffer.concat(chunks) }));
          response.on('error', reject);
        });
        request.on('error', reject);
      });

    const whole = await rawGet(`/files/${fileId}/download`, {});
    expect(whole.status).toBe(200);
    expect(whole.headers['content-encoding']).toBeUndefined();
    expect(whole.body.equals(content)).toBe(true);

    const range = await rawGet(`/files/${fileId}/download`, { range: 'bytes=3-9' });
    expect(range.status).toBe(206);
    expect(range.headers['content-encoding']).toBeUndefined();
    expect(range.headers['content-range']).toBe(`bytes 3-9/${content.length}`);
    expect(range.body.toString()).toBe('3456789');

    const record = await rawGet(`/files/${fileId}`, {});
    expect(record.status).toBe(200);
    expect(record.headers['content-encoding']).toBeUndefined();
    expect(JSON.parse(record.body.toString()).id).toBe(fileId);
  });

  it('answers HEAD with the validators, the length and no body', async () => {
    const response = await api.request('HEAD', `/files/${fileId}/download`);
    expect(response.status).toBe(200);
    expect(response.headers.get('etag')).toBe(`"blake3:${blake3Hex(content)}"`);
    expect(response.headers.get('accept-ranges')).toBe('bytes');
    expect(response.headers.get('content-length')).toBe(String(content.length));
    expect((await response.arrayBuffer()).byteLength).toBe(0);
  });

  it('sends Content-Length with whole and ranged downloads', async () => {
    const whole = await api.get(`/files/${fileId}/download`);
    expect(whole.headers.get('content-length')).toBe(String(content.length));
    await whole.arrayBuffer();
    const range = await api.get(`/files/${fileId}/download`, { headers: { range: 'bytes=2-5' } });
    expect(range.headers.get('content-length')).toBe('4');
    expect(await range.text()).toBe('2345');
  });

  it('answers 404 for unknown and malformed file ids', async () => {
    expect((await api.get(`/files/${crypto.randomUUID()}/download`)).status).toBe(404);
    const malformed = await api.get('/files/not-a-uuid/download');
    expect(malformed.status).toBe(404);
    await problemOf(malformed);
  });
});

describe('input validation', () => {
  it.each([
    ['a//b', 'no_empty_segment'],
    ['../etc/passwd', 'no_dot_segment'],
    ['a/./b', 'no_dot_segment'],
    ['a\\b', 'no_backslash'],
    ['tab\there', 'no_control_characters'],
    ['x'.repeat(1025), 'max_bytes'],
  ])('rejects relative path %j with rule %s', async (relativePath, rule) => {
    const pkg = await api.createPackage();
    const form = new FormData();
    form.set('relative_path', relativePath);
    form.set('file', new Blob(['x']), 'x');
    const response = await api.request('POST', `/packages/${pkg.id}/files`, { body: form });
    expect(response.status).toBe(400);
    const problem = await problemOf(response);
    expect(problem.errors[0].rule).toBe(rule);
    expect(problem.path).toBe(relativePath);
  });

  it('normalizes paths to NFC so two spellings collide', async () => {
    const pkg = await api.createPackage();
    expect((await api.putFile(pkg.id, 'caf\u00e9.txt', 'one')).status).toBe(201);
    const decomposed = await api.putFile(pkg.id, 'cafe\u0301.txt', 'two');
    expect(decomposed.status).toBe(409);
  });

  it('rejects unknown fields, bad classes and malformed JSON with the field named', async () => {
    const unknownClass = await api.post('/packages', { name: 'n', producer: 'p', subject: 's', retention_class: 'nope' });
    expect(unknownClass.status).toBe(400);
    expect((await problemOf(unknownClass)).errors[0].field).toBe('retention_class');

    const extra = await api.post('/packages', { name: 'n', producer: 'p', subject: 's', retention_class: 'standard', colour: 'red' });
    expect(extra.status).toBe(400);

    const broken = await api.request('POST', '/packages', { body: '{"name":', headers: { 'content-type': 'application/json' } });
    expect(broken.status).toBe(400);
    expect((await problemOf(broken)).errors[0].rule).toBe('json');

    const wrongType = await api.request('POST', '/packages', { body: 'name=x', headers: { 'content-type': 'text/plain' } });
    expect(wrongType.status).toBe(415);
  });

  it.each([
    ['/packages?limit=5&limit=1000', 'limit'],
    ['/events/stream?tail=1000&tail=5', 'tail'],
    ['/events?since=0&producer=a&since=1', 'since'],
  ])('rejects the repeated query parameter in %s', async (target, field) => {
    const response = await api.get(target);
    expect(response.status).toBe(400);
    const problem = await problemOf(response);
    expect(problem.errors).toEqual([{ field, rule: 'unique_keys', message: 'give each query parameter at most once' }]);
  });

  it.each([
    ['/packages?limit=1e2', 'limit'],
    ['/packages/00000000-0000-4000-8000-000000000000/files?limit=0x10', 'limit'],
    ['/metadata-schemas?limit=5.0', 'limit'],
    ['/events?since=', 'since'],
    ['/events?wait_seconds=%201', 'wait_seconds'],
    ['/events/stream?tail=-1', 'tail'],
    ['/events/verify?from=1e0', 'from'],
  ])('rejects a non-digit integer in %s', async (target, field) => {
    const response = await api.get(target);
    expect(response.status).toBe(400);
    const problem = await problemOf(response);
    expect(problem.errors.map((issue: { field: string; rule: string }) => `${issue.field} ${issue.rule}`)).toEqual([`${field} integer`]);
  });

  it('rejects a non-digit Last-Event-ID', async () => {
    for (const value of ['1e0', '0x1', '1.0', '-1']) {
      const response = await api.get('/events/stream', { headers: { 'last-event-id': value } });
      expect(response.status, value).toBe(400);
      expect((await problemOf(response)).errors, value).toEqual([{ field: 'Last-Event-ID', rule: 'integer', message: `got ${JSON.stringify(value)}` }]);
    }
  });

  it('rejects metadata that cannot be canonicalized with 400, not 500', async () => {
    for (const body of ['{"a":"\\ud800"}', '{"a":1e999}', '{"a":"nul\\u0000"}']) {
      const response = await api.request('POST', '/packages', {
        body: `{"name":"n","producer":"p","subject":"s","retention_class":"standard","metadata":${body}}`,
        headers: { 'content-type': 'application/json' },
      });
      expect(response.status, body).toBe(400);
      await problemOf(response);
    }
  });

  it('validates metadata against a registered schema', async () => {
    const schema = { type: 'object', required: ['commit'], properties: { commit: { type: 'string', pattern: '^[0-9a-f]{6,40}$' } } };
    expect((await api.post('/metadata-schemas', { slug: 'build-info', schema })).status).toBe(201);
    expect((await api.post('/metadata-schemas', { slug: 'build-info', schema })).status).toBe(409);
    const bad = await api.post('/metadata-schemas', { slug: 'broken', schema: { type: 'no-such-type' } });
    expect(bad.status).toBe(400);

    const rejected = await api.createPackage({ metadata_schema: 'build-info', metadata: { commit: 'XYZ' } }).catch((error: Error) => error);
    expect(String(rejected)).toContain('400');
    const accepted = await api.createPackage({ metadata_schema: 'build-info', metadata: { commit: 'abc123' } });
    expect(accepted.metadata_schema).toBe('build-info');
  });
});

describe('listing packages', () => {
  it('filters by producer and metadata and pages with a cursor', async () => {
    const producer = `producer-${crypto.randomUUID()}`;
    const created = [];
    for (let index = 0; index < 5; index += 1) {
      created.push(await api.createPackage({ producer, metadata: { index, parity: index % 2 === 0 ? 'even' : 'odd' } }));
    }
    const seen: string[] = [];
    let cursor: string | null = null;
    do {
      const query: string = `/packages?producer=${producer}&limit=2${cursor ? `&cursor=${cursor}` : ''}`;
      const page: any = await (await api.get(query)).json();
      seen.push(...page.packages.map((item: any) => item.id));
      cursor = page.next_cursor;
    } while (cursor);
    expect(seen).toEqual(created.map((item) => item.id).reverse());

    const even = await (await api.get(`/packages?producer=${producer}&metadata_key=parity&metadata_value=even`)).json();
    expect(even.packages).toHaveLength(3);
    const byNumber = await (await api.get(`/packages?producer=${producer}&metadata_key=index&metadata_value=4`)).json();
    expect(byNumber.packages.map((item: any) => item.id)).toEqual([created[4].id]);

    const badCursor = await api.get('/packages?cursor=garbage');
    expect(badCursor.status).toBe(400);
    const badLimit = await api.get('/packages?limit=0');
    expect(badLimit.status).toBe(400);
  });
});

/** Opens an event stream, reads the ids of its first `count` messages and closes it. */
async function streamIds(path: string, count: number, headers: Record<string, string> = {}): Promise<number[]> {
  const controller = new AbortController();
  const response = await api.get(path, { headers, signal: controller.signal });
  expect(response.status).toBe(200);
  const reader = response.body!.getReader();
  const decoder = new TextDecoder();
  const ids: number[] = [];
  let text = '';
  try {
    while (ids.length < count) {
      const { value, done } = await reader.read();
      if (done) break;
      text += decoder.decode(value, { stream: true });
      for (let end = text.indexOf('\n\n'); end !== -1; end = text.indexOf('\n\n')) {
        const id = /^id: (\d+)$/m.exec(text.slice(0, end));
        if (id) ids.push(Number(id[1]));
        text = text.slice(end + 2);
      }
    }
  } finally {
    controller.abort();
  }
  return ids;
}

describe('events', () => {
  it('records every change with the token name as actor and a BLAKE3 payload digest', async () => {
    const before = await api.events(0);
    const since = Number(before.next_cursor);
    const pkg = await api.createPackage();
    await api.putFile(pkg.id, 'a.txt', 'a');
    await api.post(`/packages/${pkg.id}/finalize`);
    const after = await api.events(since);
    const mine = after.events.filter((event) => event.subject_id === pkg.id);
    expect(mine.map((event) => event.event_type)).toEqual(['package.created', 'file.added', 'package.finalized']);
    for (const event of mine) expect(event.actor).toBe('test-admin');
    const sequences = after.events.map((event) => event.sequence);
    expect(sequences).toEqual(sequences.map((_, index) => since + index + 1));
  });

  // Each waiting poll listens on the event hub's stop signal, where Node.js warns past 10 listeners.
  it('eleven waiting long polls print no leak warning', async () => {
    const head = await api.lastEventSequence();
    const polls = await Promise.all(Array.from({ length: 11 }, () => api.get(`/events?since=${head}&wait_seconds=1`)));
    for (const poll of polls) {
      expect(poll.status).toBe(200);
      await poll.arrayBuffer();
    }
    expect(server.output()).not.toContain('MaxListenersExceededWarning');
  });

  // The poll may wait 30 s, twice the test's time limit, so only a wake-up by the commit lets it pass.
  it('wakes a waiting long poll when an event commits', { timeout: 15_000 }, async () => {
    const { next_cursor } = await api.events(0);
    const poll = api.events(Number(next_cursor), 30);
    await new Promise((resolve) => setTimeout(resolve, 300));
    await api.createPackage();
    const result = await poll;
    expect(result.events.length).toBeGreaterThan(0);
  });

  // A cursor beyond the log comes from a restored backup or another registry, and waiting would skip events.
  it('rejects a cursor beyond the log', async () => {
    const last = await api.lastEventSequence();
    expect((await api.get(`/events?since=${last}`)).status).toBe(200);

    const startedAt = performance.now();
    const poll = await api.get(`/events?since=${last + 1}&wait_seconds=5`);
    expect(poll.status).toBe(409);
    expect(performance.now() - startedAt).toBeLessThan(4000);
    const problem = await problemOf(poll);
    expect(problem.last_sequence).toBe(last);
    expect(problem.detail).toContain(`since ${last + 1} is beyond the last event of this log, ${last}.`);

    const stream = await api.get('/events/stream', { headers: { 'last-event-id': String(last + 10) } });
    expect(stream.status).toBe(409);
    expect((await problemOf(stream)).detail).toContain(`Last-Event-ID ${last + 10} is beyond the last event`);
    const streamSince = await api.get(`/events/stream?since=${last + 1}`);
    expect(streamSince.status).toBe(409);
  });

  it('stream tail starts with the last matches', async () => {
    const before = await api.lastEventSequence();
    const pkg = await api.createPackage();
    await api.putFile(pkg.id, 'a.txt', 'a');
    await api.post(`/packages/${pkg.id}/finalize`);
    const mine = (await api.events(before)).events.filter((event) => event.subject_id === pkg.id).map((event) => event.sequence);
    expect(mine).toHaveLength(3);

    expect(await streamIds(`/events/stream?subject_id=${pkg.id}&tail=2`, 2)).toEqual(mine.slice(1));
    expect(await streamIds(`/events/stream?subject_id=${pkg.id}&tail=500`, 3)).toEqual(mine);
    expect(await streamIds('/events/stream?tail=1', 1)).toEqual([await api.lastEventSequence()]);
    expect(await streamIds(`/events/stream?subject_id=${pkg.id}&tail=1`, 2, { 'last-event-id': String(mine[0]) })).toEqual(mine.slice(1));
  });

  it.each([
    ['since=0&tail=5', 'custom', 'since and tail cannot be combined'],
    ['tail=0', 'too_small', ''],
    ['tail=501', 'too_big', ''],
    ['tail=last', 'integer', 'decimal digits'],
  ])('rejects the stream query %s', async (query, rule, message) => {
    const response = await api.get(`/events/stream?${query}`);
    expect(response.status).toBe(400);
    const problem = await problemOf(response);
    expect(problem.errors).toEqual([expect.objectContaining({ field: 'tail', rule, message: expect.stringContaining(message) })]);
  });

  it('returns JSON for Accept: application/json', async () => {
    const response = await api.get('/events?since=0&limit=1', { headers: { accept: 'application/json' } });
    expect(response.headers.get('content-type')).toBe('application/json');
    expect((await response.json()).events).toHaveLength(1);
  });
});

describe('health', () => {
  it('reports the database and backend without a token', async () => {
    const response = await checkedFetch(`${server.url}/api/v1/health`);
    expect(response.status).toBe(200);
    const report = await response.json();
    expect(report.status).toBe('ok');
    expect(report.backends[0].total_bytes).toBeGreaterThan(0);
    expect(JSON.stringify(report)).not.toContain(environment.storageRoot);
  });
});

describe('rejected inputs that would otherwise lose data', () => {
  it('rejects a file inside a file and a file over a directory', async () => {
    const pkg = await api.createPackage();
    expect((await api.putFile(pkg.id, 'dup', 'a file')).status).toBe(201);
    const inside = await api.putFile(pkg.id, 'dup/child', 'child');
    expect(inside.status).toBe(409);
    expect((await problemOf(inside)).conflicting_path).toBe('dup');

    expect((await api.putFile(pkg.id, 'dir/a/b.txt', 'deep')).status).toBe(201);
    const over = await api.putFile(pkg.id, 'dir/a', 'over');
    expect(over.status).toBe(409);
    expect((await problemOf(over)).conflicting_path).toBe('dir/a/b.txt');
    expect((await api.putFile(pkg.id, 'dir/ab', 'sibling')).status).toBe(201);
  });

  it('tells files below a directory from its byte-order neighbours', async () => {
    const pkg = await api.createPackage();
    // '.', '-' sort before '/' and '0' right after it, so none of these lies below "tree".
    for (const neighbour of ['tree.txt', 'tree-x/a', 'tree0/b', 'tree00']) expect((await api.putFile(pkg.id, neighbour, neighbour)).status).toBe(201);
    expect((await api.putFile(pkg.id, 'tree', 'file')).status).toBe(201);

    expect((await api.putFile(pkg.id, 'deep/é/ü.txt', 'below')).status).toBe(201);
    const over = await api.putFile(pkg.id, 'deep', 'over');
    expect(over.status).toBe(409);
    expect((await problemOf(over)).conflicting_path).toBe('deep/é/ü.txt');
  });

  it('requires relative_path before the multipart file part', async () => {
    const pkg = await api.createPackage();
    const form = new FormData();
    form.set('file', new Blob(['x']), '../../etc/passwd');
    form.set('relative_path', 'late.txt');
    const response = await api.request('POST', `/packages/${pkg.id}/files`, { body: form });
    expect(response.status).toBe(400);
    expect((await problemOf(response)).errors[0].rule).toBe('required_before_file');
    const listed = await (await api.get(`/packages/${pkg.id}/files`)).json();
    expect(listed.files).toEqual([]);
  });

  it('rejects a __proto__ metadata key instead of dropping it', async () => {
    const response = await api.request('POST', '/packages', {
      body: '{"name":"n","producer":"p","subject":"s","retention_class":"standard","metadata":{"__proto__":{"x":1}}}',
      headers: { 'content-type': 'application/json' },
    });
    expect(response.status).toBe(400);
    expect((await problemOf(response)).errors[0].rule).toBe('no_proto_key');
  });

  it('rejects NUL in a query parameter with 400', async () => {
    const response = await api.get('/packages?name=%00');
    expect(response.status).toBe(400);
    expect((await problemOf(response)).errors[0].field).toBe('name');
  });

  it('answers unknown API paths with problem+json 404', async () => {
    const response = await api.get('/no-such-endpoint/here');
    expect(response.status).toBe(404);
    await problemOf(response);
  });

  it('matches schema patterns in linear time and rejects lookaround', async () => {
    const nested = { type: 'object', properties: { tag: { type: 'string', pattern: '^(a+)+$' } } };
    expect((await api.post('/metadata-schemas', { slug: 'nested-quantifier', schema: nested })).status).toBe(201);
    // A backtracking engine needs about 2^40 steps for this value; RE2 answers at once.
    const slow = await api.post('/packages', {
      name: 'n',
      producer: 'p',
      subject: 's',
      retention_class: 'standard',
      metadata_schema: 'nested-quantifier',
      metadata: { tag: `${'a'.repeat(40)}!` },
    });
    expect(slow.status).toBe(400);
    expect((await problemOf(slow)).errors[0].rule).toBe('pattern');

    const lookahead = { type: 'object', properties: { tag: { type: 'string', pattern: '^(?=a)a$' } } };
    const rejected = await api.post('/metadata-schemas', { slug: 'lookahead', schema: lookahead });
    expect(rejected.status).toBe(400);
  });
});
