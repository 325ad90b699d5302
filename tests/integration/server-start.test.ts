import net from 'node:net';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { createTestEnvironment, startServer, type TestEnvironment, type TestServer } from '../support/server';

let environment: TestEnvironment;
let server: TestServer | undefined;

beforeAll(async () => {
  environment = await createTestEnvironment();
});

afterEach(async () => {
  await server?.stop();
  server = undefined;
  vi.restoreAllMocks();
});

afterAll(async () => {
  await environment?.cleanup();
});

/** Listens on a free loopback port and never responds, like a process that took the port first. */
async function holdPort(): Promise<net.Server> {
  const holder = net.createServer();
  await new Promise<void>((resolve, reject) => {
    holder.once('error', reject);
    holder.listen(0, '127.0.0.1', resolve);
  });
  return holder;
}

describe('startServer', () => {
  it('retries when the port is taken', async () => {
    const holder = await holdPort();
    const takenPort = (holder.address() as net.AddressInfo).port;
    const warn = vi.spyOn(console, 'warn').mockImplementation(() => undefined);
    try {
      server = await startServer(environment, {}, { firstPort: takenPort });
    } finally {
      holder.close();
    }

    expect(server.port).not.toBe(takenPort);
    expect(server.output()).toContain(`listening on http://127.0.0.1:${server.port}`);
    expect(warn).toHaveBeenCalledTimes(1);
    expect(warn.mock.calls[0][0]).toContain(`could not listen on port ${takenPort} (attempt 1 of 3)`);
    expect(warn.mock.calls[0][0]).toContain('EADDRINUSE');
    expect((await fetch(`${server.url}/api/v1/health`)).status).toBe(200);
  });

  it('throws other start failures at once', async () => {
    const warn = vi.spyOn(console, 'warn').mockImplementation(() => undefined);
    const started = startServer(environment, { RETENTION_CLASSES_FILE: path.join(environment.dir, 'missing.json') });

    await expect(started).rejects.toThrow(/server exited with 1 before it was ready/);
    await expect(started).rejects.toThrow(/artifact-store failed to start:[\s\S]*missing\.json/);
    expect(warn).not.toHaveBeenCalled();
  });
});
