import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import parsePrometheusTextFormat, { type PrometheusMetricFamily } from 'parse-prometheus-text-format';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ApiClient, problemOf } from '../support/client';
import { createTestEnvironment, startServer, useRetentionClasses, type TestEnvironment, type TestServer } from '../support/server';

const SHORT_SECONDS = 1;
const DOWNLOAD_ROUTE = '/api/v1/files/[id]/download';
const UPLOADS_ROUTE = '/api/v1/uploads/[[...id]]';
const UUID_PATTERN = /[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}/i;

type Families = Map<string, PrometheusMetricFamily>;
type Labels = Record<string, string>;

let environment: TestEnvironment;
let server: TestServer;
let admin: ApiClient;
let scraper: ApiClient;
let reader: ApiClient;
let packageId: string;

beforeAll(async () => {
  environment = await createTestEnvironment({ SWEEP_INTERVAL_SECONDS: '0', SCRUB_INTERVAL_SECONDS: '0' });
  useRetentionClasses(environment, [
    { class_id: 'short', default_duration_seconds: SHORT_SECONDS, deletion_strategy: 'delete' },
    { class_id: 'standard', default_duration_seconds: 365 * 24 * 3600, deletion_strategy: 'delete' },
  ]);
  const scraperToken = await environment.createToken('prometheus', ['metrics']);
  const readerToken = await environment.createToken('reader', ['read']);

  server = await startServer(environment);
  admin = new ApiClient(server.url, environment.adminToken);
  scraper = admin.withToken(scraperToken);
  reader = admin.withToken(readerToken);
  packageId = (await admin.createPackage({ name: 'metrics' })).id;
});

afterAll(async () => {
  await server?.stop();
  await environment?.cleanup();
});

/** Fetches /metrics and parses it with parse-prometheus-text-format, keyed by metric family name. */
async function scrape(client: ApiClient = scraper): Promise<Families> {
  const response = await client.get('/metrics');
  expect(response.status).toBe(200);
  expect(response.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/);
  const families = parsePrometheusTextFormat(await response.text());
  return new Map(families.map((family) => [family.name, family]));
}

/** Sums the samples of a counter or gauge whose labels include `labels`; undefined when none matches. */
function valueOf(families: Families, name: string, labels: Labels = {}): number | undefined {
  const family = families.get(name);
  if (!family) throw new Error(`metric ${name} is missing from the scrape`);
  const matching = family.metrics.filter((sample) => Object.entries(labels).every(([key, value]) => sample.labels?.[key] === value));
  if (matching.length === 0) return undefined;
  return matching.reduce((total, sample) => total + Number(sample.value), 0);
}

/** Returns a counter's growth between two scrapes; a series that does not exist yet counts as 0. */
function growth(before: Families, after: Families, name: string, labels: Labels = {}): number {
  return (valueOf(after, name, labels) ?? 0) - (valueOf(before, name, labels) ?? 0);
}

async function putFile(relativePath: string, bytes: Buffer): Promise<Record<string, any>> {
  const response = await admin.putFile(packageId, relativePath, new Uint8Array(bytes));
  expect(response.status).toBe(201);
  return response.json();
}

function base64(value: string): string {
  return Buffer.from(value, 'utf8').toString('base64');
}

function createUpload(relativePath: string, length: number): Promise<Response> {
  return admin.request('POST', '/uploads', {
    headers: {
      'Tus-Resumable': '1.0.0',
      'Upload-Length': String(length),
      'Upload-Metadata': `package_id ${base64(packageId)},relative_path ${base64(relativePath)}`,
    },
  });
}

function patchUpload(location: string, offset: number, body: Buffer, headers: Record<string, string> = {}): Promise<Response> {
  return admin.request('PATCH', new URL(location).pathname.replace(/^\/api\/v1/, ''), {
    headers: { 'Tus-Resumable': '1.0.0', 'Upload-Offset': String(offset), 'Content-Type': 'application/offset+octet-stream', ...headers },
    body: new Uint8Array(body),
  });
}

/** Returns the sequence of the newest event, found by paging through GET /events. */
async function eventsApiHead(): Promise<number> {
  let since = 0;
  for (;;) {
    const page = await admin.events(since);
    if (page.events.length === 0) return since;
    since = page.events[page.events.length - 1].sequence;
  }
}

describe('metrics endpoint', () => {
  it('serves the text format with process and application metrics', async () => {
    const families = await scrape();

    expect(families.get('process_cpu_user_seconds_total')?.type).toBe('COUNTER');
    expect(families.get('nodejs_eventloop_lag_seconds')?.type).toBe('GAUGE');
    expect(families.get('artifact_store_http_requests_total')?.type).toBe('COUNTER');
    // NOTE: parse-prometheus-text-format 1.1.1 merges the series of a labeled histogram into one and
    // drops their _count and _sum, so only the histogram's type is checked.
    expect(families.get('artifact_store_http_request_duration_seconds')?.type).toBe('HISTOGRAM');
    expect(families.get('artifact_store_upload_bytes_received_total')?.type).toBe('COUNTER');
    expect(families.get('artifact_store_download_bytes_sent_total')?.type).toBe('COUNTER');
    expect(families.get('artifact_store_event_log_head_sequence')?.type).toBe('GAUGE');
    expect(valueOf(families, 'artifact_store_database_up')).toBe(1);
    expect(valueOf(families, 'artifact_store_log_lines_dropped_total')).toBe(0);
  });

  it('rejects a request without a token with 401', async () => {
    const response = await admin.withToken(undefined).get('/metrics');
    expect(response.status).toBe(401);
    expect(response.headers.get('www-authenticate')).toMatch(/^Bearer/);
    expect((await problemOf(response)).status).toBe(401);
  });

  it('rejects an unknown token with 401', async () => {
    const response = await admin.withToken('as_not-a-real-token').get('/metrics');
    expect(response.status).toBe(401);
    expect(response.headers.get('www-authenticate')).toContain('invalid_token');
    expect((await problemOf(response)).status).toBe(401);
  });

  it('rejects a read-only token with 403', async () => {
    const response = await reader.get('/metrics');
    expect(response.status).toBe(403);
    const problem = await problemOf(response);
    expect(problem.required_scope).toBe('metrics');
  });

  it('accepts an admin token', async () => {
    const response = await admin.get('/metrics');
    expect(response.status).toBe(200);
    await response.text();
  });

  it('metrics scope reads nothing else', async () => {
    const response = await scraper.get('/packages');
    expect(response.status).toBe(403);
    await response.text();
  });
});

describe('request metrics', () => {
  it('counts requests by route template, method and status', async () => {
    const unknownId = crypto.randomUUID();
    const before = await scrape();

    const missing = await admin.get(`/packages/${unknownId}`);
    expect(missing.status).toBe(404);
    await missing.text();
    const found = await admin.get(`/packages/${packageId}`);
    expect(found.status).toBe(200);
    await found.text();
    const anonymous = await admin.withToken(undefined).get('/packages');
    expect(anonymous.status).toBe(401);
    await anonymous.text();
    const release = await admin.post(`/packages/${packageId}/retention/holds/${unknownId}/release`, { reason: 'metrics test' });
    expect(release.status).toBe(404);
    await release.text();
    const unknownEndpoint = await admin.get('/no/such/endpoint');
    expect(unknownEndpoint.status).toBe(404);
    await unknownEndpoint.text();

    const after = await scrape();
    const packageRoute = '/api/v1/packages/[id]';
    expect(growth(before, after, 'artifact_store_http_requests_total', { route: packageRoute, method: 'GET', status: '404' })).toBe(1);
    expect(growth(before, after, 'artifact_store_http_requests_total', { route: packageRoute, method: 'GET', status: '200' })).toBe(1);
    expect(growth(before, after, 'artifact_store_http_requests_total', { route: '/api/v1/packages', method: 'GET', status: '401' })).toBe(1);
    const releaseRoute = '/api/v1/packages/[id]/retention/holds/[hold_id]/release';
    expect(growth(before, after, 'artifact_store_http_requests_total', { route: releaseRoute, method: 'POST', status: '404' })).toBe(1);
    expect(growth(before, after, 'artifact_store_http_requests_total', { route: '/api/v1/[...unknown]', method: 'GET', status: '404' })).toBe(1);
  });

  it('labels with templates, never raw paths', async () => {
    const families = await scrape();
    const routes = families.get('artifact_store_http_requests_total')!.metrics.map((sample) => sample.labels?.route ?? '');
    expect(routes).toContain('/api/v1/packages/[id]');
    for (const route of routes) {
      expect(route).not.toMatch(UUID_PATTERN);
    }
  });
});

describe('upload metrics', () => {
  it('raw PUT adds its size to bytes received', async () => {
    const bytes = crypto.randomBytes(300_001);
    const before = await scrape();

    await putFile('put/data.bin', bytes);

    const after = await scrape();
    expect(growth(before, after, 'artifact_store_upload_bytes_received_total', { protocol: 'raw_put' })).toBe(bytes.length);
    expect(growth(before, after, 'artifact_store_digest_bytes_total')).toBe(bytes.length);
    expect(valueOf(after, 'artifact_store_uploads_in_progress', { protocol: 'raw_put' })).toBe(0);
    const putRoute = { route: '/api/v1/packages/[id]/files/[...relative_path]', method: 'PUT', status: '201' };
    expect(growth(before, after, 'artifact_store_http_requests_total', putRoute)).toBe(1);
  });

  it('multipart adds the file part size to bytes received', async () => {
    const bytes = crypto.randomBytes(123_457);
    const form = new FormData();
    form.append('relative_path', 'multipart/data.bin');
    form.append('file', new Blob([new Uint8Array(bytes)]), 'data.bin');
    const before = await scrape();

    const response = await admin.request('POST', `/packages/${packageId}/files`, { body: form });
    expect(response.status).toBe(201);
    await response.text();

    const after = await scrape();
    expect(growth(before, after, 'artifact_store_upload_bytes_received_total', { protocol: 'multipart' })).toBe(bytes.length);
    expect(growth(before, after, 'artifact_store_upload_bytes_received_total', { protocol: 'raw_put' })).toBe(0);
  });

  it('tus upload adds every PATCH body to bytes received', async () => {
    const bytes = crypto.randomBytes(200_000);
    const rejectedChunk = 10_000;
    const before = await scrape();

    const created = await createUpload('tus/data.bin', bytes.length);
    expect(created.status).toBe(201);
    const location = created.headers.get('location')!;
    expect((await patchUpload(location, 0, bytes.subarray(0, 50_000))).status).toBe(204);
    const wrongChecksum = `sha256 ${Buffer.alloc(32).toString('base64')}`;
    const mismatch = await patchUpload(location, 50_000, bytes.subarray(50_000, 50_000 + rejectedChunk), { 'Upload-Checksum': wrongChecksum });
    expect(mismatch.status).toBe(460);
    await mismatch.text();
    expect((await patchUpload(location, 50_000, bytes.subarray(50_000))).status).toBe(204);

    const after = await scrape();
    // The rejected chunk arrived too, so it counts as received.
    expect(growth(before, after, 'artifact_store_upload_bytes_received_total', { protocol: 'tus' })).toBe(bytes.length + rejectedChunk);
    expect(growth(before, after, 'artifact_store_tus_uploads_completed_total')).toBe(1);
    expect(growth(before, after, 'artifact_store_tus_write_failures_total', { reason: 'checksum_mismatch' })).toBe(1);
    expect(valueOf(after, 'artifact_store_uploads_in_progress', { protocol: 'tus' })).toBe(0);
    expect(growth(before, after, 'artifact_store_http_requests_total', { route: UPLOADS_ROUTE, method: 'POST', status: '201' })).toBe(1);
    expect(growth(before, after, 'artifact_store_http_requests_total', { route: UPLOADS_ROUTE, method: 'PATCH', status: '204' })).toBe(2);
    expect(growth(before, after, 'artifact_store_http_requests_total', { route: UPLOADS_ROUTE, method: 'PATCH', status: '460' })).toBe(1);
  });

  it('tus termination counts as abandoned', async () => {
    const created = await createUpload('tus/terminated.bin', 1000);
    expect(created.status).toBe(201);
    const location = created.headers.get('location')!;
    const before = await scrape();

    const terminated = await admin.request('DELETE', new URL(location).pathname.replace(/^\/api\/v1/, ''), { headers: { 'Tus-Resumable': '1.0.0' } });
    expect(terminated.status).toBe(204);

    const after = await scrape();
    expect(growth(before, after, 'artifact_store_tus_uploads_abandoned_total', { reason: 'terminated' })).toBe(1);
  });
});

describe('download metrics', () => {
  const size = 100_000;
  let fileId: string;

  beforeAll(async () => {
    fileId = (await putFile('download/data.bin', crypto.randomBytes(size))).id;
  });

  it('whole download adds the file size to bytes sent', async () => {
    const before = await scrape();

    const response = await admin.get(`/files/${fileId}/download`);
    expect(response.status).toBe(200);
    expect((await response.arrayBuffer()).byteLength).toBe(size);

    const after = await scrape();
    expect(growth(before, after, 'artifact_store_download_bytes_sent_total')).toBe(size);
    // The request counts once the server has read the body to its end, which may follow the client's last byte.
    await expect
      .poll(async () => growth(before, await scrape(), 'artifact_store_http_requests_total', { route: DOWNLOAD_ROUTE, method: 'GET', status: '200' }))
      .toBe(1);
  });

  it('range download adds the range length to bytes sent', async () => {
    const before = await scrape();

    const response = await admin.get(`/files/${fileId}/download`, { headers: { Range: 'bytes=1000-4999' } });
    expect(response.status).toBe(206);
    expect((await response.arrayBuffer()).byteLength).toBe(4000);

    const after = await scrape();
    expect(growth(before, after, 'artifact_store_download_bytes_sent_total')).toBe(4000);
  });

  it('multiple ranges add their content bytes only', async () => {
    const before = await scrape();

    const response = await admin.get(`/files/${fileId}/download`, { headers: { Range: 'bytes=0-99,500-699' } });
    expect(response.status).toBe(206);
    expect(response.headers.get('content-type')).toMatch(/^multipart\/byteranges/);
    await response.arrayBuffer();

    const after = await scrape();
    expect(growth(before, after, 'artifact_store_download_bytes_sent_total')).toBe(300);
  });

  it('HEAD and 304 add nothing to bytes sent', async () => {
    const before = await scrape();

    const head = await admin.request('HEAD', `/files/${fileId}/download`);
    expect(head.status).toBe(200);
    const etag = head.headers.get('etag')!;
    const notModified = await admin.get(`/files/${fileId}/download`, { headers: { 'If-None-Match': etag } });
    expect(notModified.status).toBe(304);

    const after = await scrape();
    expect(growth(before, after, 'artifact_store_download_bytes_sent_total')).toBe(0);
    expect(growth(before, after, 'artifact_store_http_requests_total', { route: DOWNLOAD_ROUTE, method: 'HEAD', status: '200' })).toBe(1);
    expect(growth(before, after, 'artifact_store_http_requests_total', { route: DOWNLOAD_ROUTE, method: 'GET', status: '304' })).toBe(1);
  });

  it('download cut off early counts only what was sent', async () => {
    const bigSize = 40 * 1024 * 1024;
    const bigId = (await putFile('download/big.bin', crypto.randomBytes(bigSize))).id;
    const before = await scrape();

    const response = await admin.get(`/files/${bigId}/download`);
    expect(response.status).toBe(200);
    const bodyReader = response.body!.getReader();
    let received = 0;
    while (received < 1024 * 1024) {
      const { done, value } = await bodyReader.read();
      if (done) break;
      received += value.byteLength;
    }
    await bodyReader.cancel();

    // The server counts the request when the cancellation reaches the body, after the client went away.
    await expect
      .poll(async () => growth(before, await scrape(), 'artifact_store_http_requests_total', { route: DOWNLOAD_ROUTE, method: 'GET', status: '200' }), {
        timeout: 10_000,
      })
      .toBe(1);
    const sent = growth(before, await scrape(), 'artifact_store_download_bytes_sent_total');
    expect(sent).toBeGreaterThanOrEqual(received);
    expect(sent).toBeLessThan(bigSize);
  });
});

describe('state gauges', () => {
  it('event head equals the events API head', async () => {
    await admin.createPackage({ name: 'metrics-head' });

    const families = await scrape();
    const head = await eventsApiHead();

    expect(head).toBeGreaterThan(0);
    expect(valueOf(families, 'artifact_store_event_log_head_sequence')).toBe(head);
  });

  it('storage gauges cover every backend', async () => {
    const response = await admin.get('/backends');
    expect(response.status).toBe(200);
    const backendIds: string[] = (await response.json()).backends.map((backend: { id: string }) => backend.id);
    expect(backendIds.length).toBeGreaterThan(0);

    const families = await scrape();
    for (const backend of backendIds) {
      const free = valueOf(families, 'artifact_store_storage_free_bytes', { backend });
      const total = valueOf(families, 'artifact_store_storage_total_bytes', { backend });
      expect(free).toBeGreaterThan(0);
      expect(total).toBeGreaterThanOrEqual(free!);
      expect(valueOf(families, 'artifact_store_storage_backend_up', { backend })).toBe(1);
    }
    expect(valueOf(families, 'artifact_store_storage_failed_locations')).toBe(0);
  });

  it('long poll shows as a waiter until it returns', async () => {
    const head = await eventsApiHead();
    const poll = admin.events(head, 20);
    await expect.poll(async () => valueOf(await scrape(), 'artifact_store_event_waiters', { kind: 'long_poll' })).toBe(1);

    await admin.createPackage({ name: 'metrics-wake' });
    expect((await poll).events.length).toBeGreaterThan(0);

    await expect.poll(async () => valueOf(await scrape(), 'artifact_store_event_waiters', { kind: 'long_poll' })).toBe(0);
  });

  it('event stream shows as a waiter until it closes', async () => {
    const abort = new AbortController();
    const head = await eventsApiHead();
    const response = await admin.get(`/events/stream?since=${head}`, { signal: abort.signal });
    expect(response.status).toBe(200);
    const streamReader = response.body!.getReader();
    await streamReader.read();
    await expect.poll(async () => valueOf(await scrape(), 'artifact_store_event_waiters', { kind: 'sse' })).toBe(1);

    abort.abort();
    await streamReader.cancel().catch(() => undefined);

    await expect.poll(async () => valueOf(await scrape(), 'artifact_store_event_waiters', { kind: 'sse' }), { timeout: 10_000 }).toBe(0);
  });
});

describe('retention metrics', () => {
  it('sweep counts its run and deletions', async () => {
    const pkg = await admin.createPackage({ name: 'metrics-short', retention_class: 'short' });
    const put = await admin.putFile(pkg.id, 'short.bin', new Uint8Array(crypto.randomBytes(5000)));
    expect(put.status).toBe(201);
    const finalized = await admin.post(`/packages/${pkg.id}/finalize`);
    expect(finalized.status).toBe(200);
    await new Promise((resolve) => setTimeout(resolve, SHORT_SECONDS * 1000 + 300));
    const before = await scrape();

    const dryRun = await admin.post('/retention/sweep', { dry_run: true });
    expect(dryRun.status).toBe(200);
    expect((await dryRun.json()).would_delete.length).toBe(1);
    const afterDryRun = await scrape();
    expect(growth(before, afterDryRun, 'artifact_store_retention_sweeps_total')).toBe(0);

    const sweep = await admin.post('/retention/sweep', { dry_run: false });
    expect(sweep.status).toBe(200);
    const report = await sweep.json();
    expect(report.deleted.length).toBe(1);

    const after = await scrape();
    expect(growth(before, after, 'artifact_store_retention_sweeps_total', { result: 'success' })).toBe(1);
    expect(growth(before, after, 'artifact_store_retention_deletions_total', { kind: 'package' })).toBe(1);
    expect(growth(before, after, 'artifact_store_retention_deletions_total', { kind: 'blob' })).toBe(report.blobs_removed.length);
  });
});

describe('scrub metrics', () => {
  it('scrub counts checked copies and failures', async () => {
    const pkg = await admin.createPackage({ name: 'metrics-scrub' });
    const bytes = crypto.randomBytes(20_000);
    const put = await admin.putFile(pkg.id, 'scrub.bin', new Uint8Array(bytes));
    expect(put.status).toBe(201);
    const hex: string = (await put.json()).digest_primary_hex;
    const objectPath = path.join(environment.storageRoot, 'blake3', hex.slice(0, 2), hex.slice(2, 4), hex);
    fs.chmodSync(objectPath, 0o644);
    fs.writeFileSync(objectPath, crypto.randomBytes(bytes.length));
    const before = await scrape();

    const response = await admin.post('/scrub', { package_id: pkg.id });
    expect(response.status).toBe(200);
    const report = await response.json();
    expect(report.corrupt.length).toBe(1);

    const after = await scrape();
    expect(growth(before, after, 'artifact_store_scrub_copies_checked_total')).toBe(report.checked);
    expect(growth(before, after, 'artifact_store_scrub_bytes_read_total')).toBe(report.bytes_read);
    expect(growth(before, after, 'artifact_store_scrub_failures_total', { status: 'corrupt' })).toBe(1);
    expect(growth(before, after, 'artifact_store_scrub_repairs_total', { result: 'failed' })).toBe(report.repair_failed.length);
    expect(valueOf(after, 'artifact_store_storage_failed_locations')).toBe(1);
  });
});

// Runs last: it restarts the server with another setting.
describe('anonymous scraping', () => {
  it('METRICS_ANON opens the endpoint and nothing else', async () => {
    await server.stop();
    server = await startServer(environment, { METRICS_ANON: 'true' });
    const anonymous = new ApiClient(server.url);

    const families = await scrape(anonymous);
    expect(valueOf(families, 'artifact_store_database_up')).toBe(1);

    const packages = await anonymous.get('/packages');
    expect(packages.status).toBe(401);
    await packages.text();
  });
});
