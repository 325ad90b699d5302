import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connectDatabase } from '@/db/client';
import { revokeToken } from '@/server/registry/tokens';
import { ON_POSTGRES } from '../support/database';
import { ApiClient, problemOf } from '../support/client';
import { createTestEnvironment, startServer, type TestEnvironment, type TestServer } from '../support/server';

let environment: TestEnvironment;
let first: TestServer;
let second: TestServer | undefined;
let admin: ApiClient;

beforeAll(async () => {
  environment = await createTestEnvironment();
  first = await startServer(environment);
  // PGlite belongs to one process, so a second server can share the database only on PostgreSQL.
  if (ON_POSTGRES) second = await startServer(environment);
  admin = new ApiClient(first.url, environment.adminToken);
});

afterAll(async () => {
  await first?.stop();
  await second?.stop();
  await environment?.cleanup();
});

/** Creates a token over the API and returns its secret. */
async function createApiToken(name: string): Promise<string> {
  const response = await admin.post('/tokens', { name, scopes: ['read'] });
  expect(response.status).toBe(201);
  return (await response.json()).token;
}

/** Sends GET /packages with the token to the server and returns the status (401 also checks the problem body). */
async function listStatus(server: TestServer, token: string): Promise<number> {
  const response = await new ApiClient(server.url, token).get('/packages?limit=1');
  if (response.status === 401) {
    expect(response.headers.get('www-authenticate')).toContain('error="invalid_token"');
    await problemOf(response);
  } else {
    await response.arrayBuffer();
  }
  return response.status;
}

/**
 * Opens an event stream with the token on the server and returns a function that reads the stream to its
 * end and returns its text. The stream stays open until the server ends it.
 */
async function openEventStream(server: TestServer, token: string): Promise<() => Promise<string>> {
  const response = await new ApiClient(server.url, token).get('/events/stream?tail=1');
  expect(response.status).toBe(200);
  const reader = response.body!.getReader();
  const decoder = new TextDecoder();
  return async () => {
    let text = '';
    for (let chunk = await reader.read(); !chunk.done; chunk = await reader.read()) text += decoder.decode(chunk.value, { stream: true });
    return text;
  };
}

/** Lets an open stream pass the minimum time between two checks of its credentials. */
const afterCredentialsCheckInterval = () => new Promise((resolve) => setTimeout(resolve, 1_200));

describe('token revocation', () => {
  it('revoked token gets 401 on its next request', async () => {
    const token = await createApiToken('cached-then-revoked');
    for (let attempt = 0; attempt < 3; attempt += 1) expect(await listStatus(first, token)).toBe(200);

    expect((await admin.request('DELETE', '/tokens/cached-then-revoked')).status).toBe(204);

    expect(await listStatus(first, token)).toBe(401);
  });

  // Without the check the stream stays open, and reading it to its end times the test out.
  it('revoked token ends its open event stream', { timeout: 30_000 }, async () => {
    const token = await createApiToken('streaming-then-revoked');
    const readToEnd = await openEventStream(first, token);
    await afterCredentialsCheckInterval();

    expect((await admin.request('DELETE', '/tokens/streaming-then-revoked')).status).toBe(204);

    expect(await readToEnd()).toContain(': the credentials of this stream were revoked or expired');
    expect((await new ApiClient(first.url, token).get('/events/stream')).status).toBe(401);
  });

  // The stream checks its credentials at most once a second, and it starts with a check, so this revoke
  // falls within a second of the last one. The heartbeat would end the stream only after 15 s.
  it('revoke right after the stream opens ends it', { timeout: 30_000 }, async () => {
    const token = await createApiToken('revoked-right-away');
    const readToEnd = await openEventStream(first, token);

    expect((await admin.request('DELETE', '/tokens/revoked-right-away')).status).toBe(204);

    const ended = await Promise.race([readToEnd(), new Promise<null>((resolve) => setTimeout(() => resolve(null), 8_000))]);
    expect(ended, 'the stream was still open 8 s after the revoke').not.toBeNull();
    expect(ended).toContain(': the credentials of this stream were revoked or expired');
  });

  it('unknown token stays 401 beside a valid one', async () => {
    const token = await createApiToken('valid-neighbour');
    expect(await listStatus(first, token)).toBe(200);
    expect(await listStatus(first, `${token}x`)).toBe(401);
    expect(await listStatus(first, token)).toBe(200);
  });
});

// Any cache of tokens in a process must keep these passing: a revoke takes effect on every process as
// soon as it commits, also when it comes from outside the servers or while their LISTEN connections are down.
describe.runIf(ON_POSTGRES)('token revocation across two server processes', () => {
  it('revoke on one process rejects the token on the other at once', async () => {
    for (const [revoking, other] of [
      [first, second!],
      [second!, first],
    ]) {
      for (let round = 0; round < 5; round += 1) {
        const name = `two-process-${revoking.port}-${round}`;
        const token = await createApiToken(name);
        expect(await listStatus(revoking, token)).toBe(200);
        expect(await listStatus(other, token)).toBe(200);

        const revoked = await new ApiClient(revoking.url, environment.adminToken).request('DELETE', `/tokens/${name}`);
        expect(revoked.status).toBe(204);

        expect(await listStatus(other, token)).toBe(401);
        expect(await listStatus(revoking, token)).toBe(401);
      }
    }
  });

  it('revoke on one process ends the event stream on the other', { timeout: 30_000 }, async () => {
    const token = await createApiToken('streaming-on-the-other');
    const readToEnd = await openEventStream(second!, token);
    await afterCredentialsCheckInterval();

    expect((await admin.request('DELETE', '/tokens/streaming-on-the-other')).status).toBe(204);

    expect(await readToEnd()).toContain(': the credentials of this stream were revoked or expired');
  });

  it('revoke from outside the servers rejects the token on both', async () => {
    const token = await createApiToken('revoked-by-command');
    expect(await listStatus(first, token)).toBe(200);
    expect(await listStatus(second!, token)).toBe(200);

    const connection = await connectDatabase({ databaseUrl: environment.env.DATABASE_URL, pgliteDir: '' });
    try {
      await revokeToken(connection.db, { name: 'revoked-by-command', actor: 'test' });
    } finally {
      await connection.close();
    }

    expect(await listStatus(first, token)).toBe(401);
    expect(await listStatus(second!, token)).toBe(401);
  });

  it('revoke while the listeners are down rejects the token once they are back', async () => {
    const token = await createApiToken('revoked-while-deaf');
    expect(await listStatus(first, token)).toBe(200);
    expect(await listStatus(second!, token)).toBe(200);

    const client = new pg.Client({ connectionString: environment.env.DATABASE_URL });
    await client.connect();
    try {
      const listenerQuery = `SELECT count(*)::int AS listeners FROM pg_stat_activity
        WHERE datname = current_database() AND pid <> pg_backend_pid() AND query LIKE 'LISTEN%' AND state = 'idle'`;
      const before = (await client.query(listenerQuery)).rows[0].listeners as number;
      expect(before).toBe(2);
      await client.query(`SELECT pg_terminate_backend(pid) FROM pg_stat_activity
        WHERE datname = current_database() AND pid <> pg_backend_pid() AND query LIKE 'LISTEN%'`);

      // The NOTIFY of this revoke reaches no server, because neither listens at this moment.
      await client.query('BEGIN');
      await client.query(`UPDATE api_tokens SET revoked_at = now() WHERE name = 'revoked-while-deaf'`);
      await client.query('COMMIT');

      // Each server reconnects its LISTEN connection after about a second.
      for (let waited = 0; (await client.query(listenerQuery)).rows[0].listeners < 2; waited += 1) {
        expect(waited).toBeLessThan(300);
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
    } finally {
      await client.end();
    }

    expect(await listStatus(first, token)).toBe(401);
    expect(await listStatus(second!, token)).toBe(401);
  });
});
