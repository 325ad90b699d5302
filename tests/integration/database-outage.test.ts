import { setTimeout as sleep } from 'node:timers/promises';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connectDatabase, POSTGRES_CONNECT_TIMEOUT_MS } from '@/db/client';
import { ApiClient, problemOf } from '../support/client';
import { ON_POSTGRES, TEST_DATABASE_URL } from '../support/database';
import { createTestEnvironment, startServer, type TestEnvironment, type TestServer } from '../support/server';
import { startTcpProxy, type TcpProxy } from '../support/tcp-proxy';
import { errorLines } from '../support/instances';
import { createTusUpload } from '../support/tus';

// The outage is a cut TCP link between the server and PostgreSQL. PGlite runs inside the server
// process, so there is no link to cut and these cases need PostgreSQL (TEST_DATABASE_URL).
describe.skipIf(!ON_POSTGRES)('PostgreSQL outage', () => {
  let environment: TestEnvironment;
  let proxy: TcpProxy;
  let server: TestServer;
  let api: ApiClient;

  beforeAll(async () => {
    environment = await createTestEnvironment({ SWEEP_INTERVAL_SECONDS: '0', SCRUB_INTERVAL_SECONDS: '0' });
    const target = new URL(TEST_DATABASE_URL!);
    proxy = await startTcpProxy(target.hostname, Number(target.port || 5432));
    const proxied = new URL(environment.env.DATABASE_URL);
    proxied.hostname = '127.0.0.1';
    proxied.port = String(proxy.port);
    server = await startServer(environment, { DATABASE_URL: proxied.toString() });
    api = new ApiClient(server.url, environment.adminToken);
  });

  afterAll(async () => {
    await server?.stop();
    await proxy?.close();
    await environment?.cleanup();
  });

  /** Uploads a small file with tus in one PATCH, which takes and releases an upload lock. */
  async function uploadWithTus(packageId: string, relativePath: string): Promise<number> {
    const content = Buffer.from(`content of ${relativePath}\n`);
    const uploadPath = await createTusUpload(api, packageId, relativePath, content.length);
    const patch = await api.request('PATCH', uploadPath, {
      headers: { 'Tus-Resumable': '1.0.0', 'Upload-Offset': '0', 'Content-Type': 'application/offset+octet-stream' },
      body: new Uint8Array(content),
    });
    return patch.status;
  }

  it('outage degrades health, then recovers without restart', { timeout: 120_000 }, async () => {
    const before = await api.createPackage({ name: 'before-outage' });
    // Leaves an idle connection in the pool of upload locks, which the cut then breaks.
    expect(await uploadWithTus(before.id, 'before.txt')).toBe(204);
    const direct = new pg.Client({ connectionString: environment.env.DATABASE_URL });
    await direct.connect();
    const head = Number((await direct.query<{ sequence: string }>('SELECT sequence FROM event_log_head WHERE id = 1')).rows[0].sequence);
    await direct.end();
    const poll = api.events(head, 30);
    await sleep(300);

    const outputBeforeCut = server.output().length;
    await proxy.cut();
    // Health reports the outage whether the caller sends a token or not, because it looks up no token.
    for (const client of [api.withToken(undefined), api]) {
      const health = await client.get('/health');
      expect(health.status).toBe(503);
      expect((await health.json()).database.status).toBe('unavailable');
    }
    // Any other request fails with a 503 and Retry-After, not with a 500.
    const listing = await api.get('/packages');
    expect(listing.status).toBe(503);
    expect(listing.headers.get('retry-after')).toBe('5');
    const problem = await problemOf(listing);
    expect(problem.title).toBe('Database unavailable');
    expect(problem.request_id).toBe(listing.headers.get('x-request-id'));
    // drizzle wraps the driver's error in a class that the production build minifies, so the logged type
    // must come from the error's name, not from a one-letter class name.
    const loggedTypes = () =>
      errorLines(server.output().slice(outputBeforeCut))
        .filter((line) => line.includes('request failed because the database is unavailable'))
        .map((line) => JSON.parse(line).err.type as string);
    await expect.poll(() => loggedTypes().length, { timeout: 10_000 }).toBeGreaterThan(0);
    for (const type of loggedTypes()) expect(type).toMatch(/^[A-Z][A-Za-z0-9]*Error$/);
    const upload = await api.request('POST', '/uploads', {
      headers: { 'Tus-Resumable': '1.0.0', 'Upload-Length': '1', 'Upload-Metadata': `package_id ${Buffer.from(before.id).toString('base64')}` },
    });
    expect(upload.status).toBe(503);
    expect(upload.headers.get('tus-resumable')).toBe('1.0.0');

    await proxy.restore();
    while ((await fetch(api.url('/health'))).status !== 200) await sleep(200);
    const after = await api.createPackage({ name: 'after-outage' });
    expect(await uploadWithTus(after.id, 'after.txt')).toBe(204);

    // The poll started before the outage. The LISTEN connection came back and woke it for the new events.
    const feed = await poll;
    expect(feed.events.map((event) => event.subject_id)).toContain(after.id);
    expect(server.process.exitCode).toBeNull();
    expect(server.output()).toContain('the PostgreSQL LISTEN connection is back');
    expect(errorLines(server.output()).filter((line) => !line.includes('the database is unavailable'))).toEqual([]);
    expect(server.output()).not.toContain('unexpected error');
  });

  it('reconnects a LISTEN connection lost without a word', { timeout: 60_000 }, async () => {
    const target = new URL(TEST_DATABASE_URL!);
    const ownProxy = await startTcpProxy(target.hostname, Number(target.port || 5432));
    const proxied = new URL(environment.env.DATABASE_URL);
    proxied.hostname = '127.0.0.1';
    proxied.port = String(ownProxy.port);
    const warnings: string[] = [];
    const log = { info: () => undefined, warn: (_object: object, message: string) => void warnings.push(message) };
    const connection = await connectDatabase({ databaseUrl: proxied.toString(), pgliteDir: '', log, listenerCheckIntervalMs: 500 });
    const direct = new pg.Client({ connectionString: environment.env.DATABASE_URL });
    await direct.connect();
    try {
      const payloads: string[] = [];
      await connection.listen('listen_check', (payload) => payloads.push(payload));
      await direct.query(`NOTIFY listen_check, 'before'`);
      while (!payloads.includes('before')) await sleep(20);

      // The LISTEN connection now passes nothing, and the listener gets no error.
      ownProxy.freezeOpenConnections();
      await direct.query(`NOTIFY listen_check, 'lost'`);
      // The check query gets no response, so the listener reconnects and wakes its handlers with "0".
      const deadline = Date.now() + 10_000;
      while (!payloads.includes('0') && Date.now() < deadline) await sleep(50);
      expect(payloads).toContain('0');
      expect(payloads).not.toContain('lost');
      expect(warnings).toContain('the PostgreSQL LISTEN connection did not respond to a check query; reconnecting');

      await direct.query(`NOTIFY listen_check, 'after'`);
      while (!payloads.includes('after') && Date.now() < deadline) await sleep(20);
      expect(payloads).toContain('after');
    } finally {
      await direct.end();
      await ownProxy.close();
      await connection.close();
    }
  });

  // A request's query on a connection that no longer passes packets keeps the pool from closing.
  it('exits on SIGTERM while the database does not respond', { timeout: 60_000 }, async () => {
    const own = await createTestEnvironment({ SWEEP_INTERVAL_SECONDS: '0', SCRUB_INTERVAL_SECONDS: '0' });
    const target = new URL(TEST_DATABASE_URL!);
    const ownProxy = await startTcpProxy(target.hostname, Number(target.port || 5432));
    const proxied = new URL(own.env.DATABASE_URL);
    proxied.hostname = '127.0.0.1';
    proxied.port = String(ownProxy.port);
    const ownServer = await startServer(own, { DATABASE_URL: proxied.toString(), SHUTDOWN_GRACE_SECONDS: '1' });
    const stuck = new AbortController();
    try {
      const ownApi = new ApiClient(ownServer.url, own.adminToken);
      expect((await ownApi.get('/packages?limit=1')).status).toBe(200);
      ownProxy.freezeOpenConnections();
      // The token check takes the pooled connection that no longer passes packets and waits on it.
      const pending = ownApi.get('/packages?limit=1', { signal: stuck.signal }).catch(() => undefined);
      await sleep(500);

      const exited = new Promise<number | null>((resolve) => ownServer.process.once('exit', (code) => resolve(code)));
      const startedAt = performance.now();
      ownServer.process.kill('SIGTERM');
      expect(await exited).toBe(143);
      // The grace period of 1 s, at most 5 s for Next.js to close and 5 s for the database.
      expect(performance.now() - startedAt).toBeLessThan(20_000);
      expect(ownServer.output()).toContain('closing the database timed out after 5000 ms; exiting without it');
      expect(ownServer.output()).not.toContain('artifact-store closed the database');
      stuck.abort();
      await pending;
    } finally {
      stuck.abort();
      await ownServer.kill();
      await ownProxy.close();
      await own.cleanup();
    }
  });

  it('a silent database gets 503 after the connect timeout', { timeout: 60_000 }, async () => {
    // The proxy now accepts connections and forwards nothing, like a network that drops packets.
    await proxy.blackhole();
    try {
      // Lets the pool notice that its idle connections closed, so the request must open a new one.
      await sleep(300);
      const startedAt = performance.now();
      const listing = await api.get('/packages');
      const elapsedMs = performance.now() - startedAt;
      expect(listing.status).toBe(503);
      expect((await problemOf(listing)).title).toBe('Database unavailable');
      expect(elapsedMs).toBeGreaterThanOrEqual(POSTGRES_CONNECT_TIMEOUT_MS - 500);
      expect(elapsedMs).toBeLessThan(POSTGRES_CONNECT_TIMEOUT_MS + 5000);
    } finally {
      await proxy.restore();
    }
    while ((await fetch(api.url('/health'))).status !== 200) await sleep(200);
    expect((await api.createPackage({ name: 'after-silence' })).status).toBe('open');
  });
});
