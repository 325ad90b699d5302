import crypto from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ApiClient, checkedFetch } from '../support/client';
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

/** Counts committed blob objects under the store's content-addressed tree. */
function countBlobs(storageRoot: string): number {
  const directory = path.join(storageRoot, 'blake3');
  if (!fs.existsSync(directory)) return 0;
  return fs.readdirSync(directory, { recursive: true, withFileTypes: true }).filter((entry) => entry.isFile()).length;
}

describe('a server killed mid-upload', () => {
  it('leaves no file row and no blob, and the next start removes the temporary file', { timeout: 300_000 }, async () => {
    const pkg = await api.createPackage();
    const totalBytes = 1024 ** 3;
    let sent = 0;
    let resolveHalf: () => void;
    const halfway = new Promise<void>((resolve) => (resolveHalf = resolve));
    const chunk = crypto.randomBytes(1024 * 1024);
    const body = new ReadableStream<Uint8Array>({
      async pull(controller) {
        if (sent >= totalBytes) return controller.close();
        controller.enqueue(new Uint8Array(chunk));
        sent += chunk.length;
        if (sent >= totalBytes / 2) resolveHalf();
        if (sent > totalBytes / 2 + 8 * chunk.length) await new Promise((resolve) => setTimeout(resolve, 50));
      },
    });
    const upload = checkedFetch(`${server.url}/api/v1/packages/${pkg.id}/files/big.bin`, {
      method: 'PUT',
      headers: { authorization: `Bearer ${environment.adminToken}` },
      body,
      duplex: 'half',
    } as RequestInit).catch((error: Error) => error);

    await halfway;
    await new Promise((resolve) => setTimeout(resolve, 200));
    const temporaryBefore = fs.readdirSync(path.join(environment.storageRoot, 'tmp'));
    expect(temporaryBefore.length).toBeGreaterThan(0);
    await server.kill();
    expect(await upload).toBeInstanceOf(Error);

    server = await startServer(environment);
    api = new ApiClient(server.url, environment.adminToken);
    const temporaryAfter = fs.readdirSync(path.join(environment.storageRoot, 'tmp'));
    expect(temporaryAfter).toEqual([]);
    expect(server.output()).toContain('removed a temporary file left by an interrupted write');

    const files = await (await api.get(`/packages/${pkg.id}/files`)).json();
    expect(files.files).toEqual([]);
    const record = await (await api.get(`/packages/${pkg.id}`)).json();
    expect(record.status).toBe('open');
    expect(countBlobs(environment.storageRoot)).toBe(0);
  });
});

describe('a start-up failure', () => {
  it('exits with 1 instead of serving errors', { timeout: 120_000 }, async () => {
    const started = startServer(environment, { RETENTION_CLASSES_FILE: path.join(environment.dir, 'missing-retention-classes.json') });
    await expect(started).rejects.toThrow(/server exited with 1 before it was ready/);
    await expect(started).rejects.toThrow(/artifact-store failed to start:[\s\S]*missing-retention-classes\.json/);
  });

  it('starts with a store root that is a file', { timeout: 120_000 }, async () => {
    const broken = await createTestEnvironment();
    let brokenServer: TestServer | undefined;
    try {
      fs.rmSync(broken.storageRoot, { recursive: true, force: true });
      fs.writeFileSync(broken.storageRoot, 'a file where the store directory belongs\n');

      brokenServer = await startServer(broken);
      const response = await checkedFetch(`${brokenServer.url}/api/v1/health`);
      expect(response.status).toBe(503);
      const health = await response.json();
      expect(health.backends[0].status).toBe('unavailable');
      expect(brokenServer.output()).toContain('failed to remove temporary files left by interrupted writes');
    } finally {
      await brokenServer?.stop();
      await broken.cleanup();
    }
  });
});

describe('stopping the server', () => {
  it('cuts a stalled upload after the grace period', { timeout: 120_000 }, async () => {
    const own = await createTestEnvironment();
    const ownServer = await startServer(own, { SHUTDOWN_GRACE_SECONDS: '1' });
    try {
      const pkg = await new ApiClient(ownServer.url, own.adminToken).createPackage();
      // A PUT that sends 10 of its 1,000 bytes and then nothing, well within the body idle timeout.
      const socket = net.connect(ownServer.port, '127.0.0.1');
      await new Promise((resolve) => socket.once('connect', resolve));
      socket.write(
        `PUT /api/v1/packages/${pkg.id}/files/stalled.bin HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer ${own.adminToken}\r\n` +
          'Content-Length: 1000\r\n\r\n0123456789',
      );
      const socketClosed = new Promise((resolve) => socket.once('close', resolve));
      socket.on('error', () => undefined);
      await new Promise((resolve) => setTimeout(resolve, 500));

      const exited = new Promise<number | null>((resolve) => ownServer.process.once('exit', (code) => resolve(code)));
      ownServer.process.kill('SIGTERM');
      await socketClosed;
      expect(await exited).toBe(143);
      expect(ownServer.output()).toContain('is closing the connections still open after 1 s');
      // The database is closed before exit, so PGlite's lock is given back and the next process need not take over a stale one.
      expect(ownServer.output()).toContain('artifact-store closed the database');
      expect(fs.existsSync(path.join(own.env.DATA_DIR, 'pglite', 'artifact-store.lock'))).toBe(false);
    } finally {
      await ownServer.kill();
      await own.cleanup();
    }
  });

  // Waiting requests would otherwise hold the shutdown for the whole grace period, here 60 s.
  it('ends event streams and long polls at once', { timeout: 120_000 }, async () => {
    const own = await createTestEnvironment();
    const ownServer = await startServer(own, { SHUTDOWN_GRACE_SECONDS: '60' });
    try {
      const api = new ApiClient(ownServer.url, own.adminToken);
      const head = await api.lastEventSequence();
      const stream = await api.get('/events/stream?tail=1');
      expect(stream.status).toBe(200);
      const reader = stream.body!.getReader();
      await reader.read();
      const poll = api.get(`/events?since=${head}&wait_seconds=30`, { headers: { accept: 'application/json' } });
      await new Promise((resolve) => setTimeout(resolve, 500));

      const exited = new Promise<number | null>((resolve) => ownServer.process.once('exit', (code) => resolve(code)));
      const startedAt = performance.now();
      ownServer.process.kill('SIGTERM');

      const polled = await poll;
      expect(polled.status).toBe(200);
      expect((await polled.json()).events).toEqual([]);
      // The stream ends as a stream does, not with an error, so EventSource reconnects after its retry time.
      for (let chunk = await reader.read(); !chunk.done; chunk = await reader.read());
      expect(await exited).toBe(143);
      expect(performance.now() - startedAt).toBeLessThan(30_000);
      expect(ownServer.output()).not.toContain('is closing the connections still open');
    } finally {
      await ownServer.kill();
      await own.cleanup();
    }
  });

  it('exits while a handler outlives its client', { timeout: 120_000 }, async () => {
    const own = await createTestEnvironment();
    const ownServer = await startServer(own, { SHUTDOWN_GRACE_SECONDS: '1' });
    try {
      const head = await new ApiClient(ownServer.url, own.adminToken).lastEventSequence();
      // Next.js's close never returned after the client of a long poll with a request pipelined behind it
      // closed the connection, so the server did not exit.
      const socket = net.connect(ownServer.port, '127.0.0.1');
      await new Promise((resolve) => socket.once('connect', resolve));
      const requestHead = (target: string) => `GET ${target} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer ${own.adminToken}\r\n\r\n`;
      socket.write(requestHead(`/api/v1/events?since=${head}&wait_seconds=30`) + requestHead('/api/v1/health'));
      await new Promise((resolve) => setTimeout(resolve, 1000));
      socket.destroy();
      await new Promise((resolve) => setTimeout(resolve, 500));

      const exited = new Promise<number | null>((resolve) => ownServer.process.once('exit', (code) => resolve(code)));
      const startedAt = performance.now();
      ownServer.process.kill('SIGTERM');
      expect(await exited).toBe(143);
      // The exit comes after at most the 5 s that Next.js gets to close.
      expect(performance.now() - startedAt).toBeLessThan(15_000);
      expect(ownServer.output()).toContain('artifact-store closed the database');
    } finally {
      await ownServer.kill();
      await own.cleanup();
    }
  });
});
