import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ApiClient } from '../support/client';
import { ON_POSTGRES, TEST_DATABASE_URL } from '../support/database';
import { errorLines } from '../support/instances';
import { createTestEnvironment, startServer, type TestEnvironment, type TestServer } from '../support/server';
import { startTcpProxy, type TcpProxy } from '../support/tcp-proxy';

// The production build minifies class names, so a logged error whose class sets no `name` is logged
// with a type of one or two letters. A cut database link makes drizzle wrap the driver error.
describe.skipIf(!ON_POSTGRES)('logged error types', () => {
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

  it('names a failed query by class', async () => {
    await api.createPackage({ name: 'before-cut' });
    const outputBefore = server.output().length;
    await proxy.cut();
    const listing = await api.get('/packages');
    expect(listing.status).toBe(503);
    await listing.arrayBuffer();

    const loggedTypes = () =>
      errorLines(server.output().slice(outputBefore))
        .filter((line) => line.includes('request failed because the database is unavailable'))
        .map((line) => JSON.parse(line).err.type as string);
    await expect.poll(() => loggedTypes().length, { timeout: 10_000 }).toBeGreaterThan(0);
    for (const type of loggedTypes()) expect(type).toMatch(/^[A-Z][A-Za-z0-9]*Error$/);
    await proxy.restore();
  });
});
