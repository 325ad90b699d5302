import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ON_POSTGRES } from '../support/database';
import { ApiClient, problemOf } from '../support/client';
import { createTestEnvironment, startServer, type TestEnvironment, type TestServer } from '../support/server';

let environment: TestEnvironment;
let server: TestServer;
let admin: ApiClient;
let readOnlyToken: string;
let revokedToken: string;
let fileId: string;
let packageId: string;

beforeAll(async () => {
  environment = await createTestEnvironment();
  readOnlyToken = await environment.createToken('reader', ['read']);
  revokedToken = await environment.createToken('former', ['read', 'write']);
  server = await startServer(environment);
  admin = new ApiClient(server.url, environment.adminToken);
  expect((await admin.request('DELETE', '/tokens/former')).status).toBe(204);
  const pkg = await admin.createPackage();
  packageId = pkg.id;
  fileId = (await (await admin.putFile(pkg.id, 'a.txt', 'a')).json()).id;
});

afterAll(async () => {
  await server?.stop();
  await environment?.cleanup();
});

const REALM = 'Bearer realm="artifact-store"';

describe('bearer token challenges', () => {
  const requests: [string, (client: ApiClient) => Promise<Response>][] = [
    ['download', (client) => client.get(`/files/${fileId}/download`)],
    ['file upload', (client) => client.putFile(packageId, 'b.txt', 'b')],
    ['finalize', (client) => client.post(`/packages/${packageId}/finalize`)],
  ];

  it.each(requests)('%s without a token gets 401 with a bare challenge', async (_, send) => {
    const response = await send(admin.withToken(undefined));
    expect(response.status).toBe(401);
    expect(response.headers.get('www-authenticate')).toBe(REALM);
    await problemOf(response);
  });

  it.each(requests)('%s with a revoked token gets 401 invalid_token', async (_, send) => {
    const response = await send(admin.withToken(revokedToken));
    expect(response.status).toBe(401);
    expect(response.headers.get('www-authenticate')).toContain('error="invalid_token"');
    expect(response.headers.get('www-authenticate')).toMatch(/^Bearer realm="artifact-store"/);
    await problemOf(response);
  });

  it.each(requests)('%s with an unknown token gets 401 invalid_token', async (_, send) => {
    const response = await send(admin.withToken('as_not-a-real-token'));
    expect(response.status).toBe(401);
    expect(response.headers.get('www-authenticate')).toContain('error="invalid_token"');
  });

  it('a read-only token reads but gets 403 insufficient_scope on writes', async () => {
    const reader = admin.withToken(readOnlyToken);
    expect((await reader.get(`/files/${fileId}/download`)).status).toBe(200);
    for (const response of [await reader.putFile(packageId, 'c.txt', 'c'), await reader.post(`/packages/${packageId}/finalize`)]) {
      expect(response.status).toBe(403);
      expect(response.headers.get('www-authenticate')).toContain('error="insufficient_scope"');
      expect((await problemOf(response)).required_scope).toBe('write');
    }
  });

  it('a malformed Authorization header gets 401 invalid_token', async () => {
    const response = await admin.get('/packages', { headers: { authorization: 'Basic dXNlcjpwYXNz' } });
    expect(response.status).toBe(401);
    expect(response.headers.get('www-authenticate')).toContain('error="invalid_token"');
  });
});

describe('console sessions', () => {
  it('turns a token into an httpOnly SameSite=Strict cookie and refuses cross-origin writes', async () => {
    const signIn = await admin.withToken(undefined).post('/session', { token: environment.adminToken });
    expect(signIn.status).toBe(201);
    const setCookie = signIn.headers.get('set-cookie') ?? '';
    expect(setCookie).toMatch(/HttpOnly/);
    expect(setCookie).toMatch(/SameSite=Strict/);
    const cookie = setCookie.split(';')[0];

    const anonymous = admin.withToken(undefined);
    const me = await anonymous.get('/session', { headers: { cookie } });
    expect((await me.json()).name).toBe('test-admin');

    const json = { name: 'n', producer: 'p', subject: 's', retention_class: 'standard' };
    const sameOrigin = await anonymous.request('POST', '/packages', { json, headers: { cookie, origin: server.url } });
    expect(sameOrigin.status).toBe(201);
    const crossOrigin = await anonymous.request('POST', '/packages', { json, headers: { cookie, origin: 'http://evil.example' } });
    expect(crossOrigin.status).toBe(401);

    expect((await anonymous.request('DELETE', '/session', { headers: { cookie } })).status).toBe(204);
    expect((await anonymous.get('/packages', { headers: { cookie } })).status).toBe(401);
  });
});

describe('token command line', () => {
  // PGlite is one process's database, so the command must refuse it while the server runs; on
  // PostgreSQL it works alongside the server and the new token is usable at once.
  it('creates tokens only where it can do so safely', async () => {
    const root = path.resolve(import.meta.dirname, '../..');
    const result = spawnSync(process.execPath, [path.join(root, 'node_modules/tsx/dist/cli.mjs'), 'scripts/token.ts', 'create', '--name', 'from-cli', '--scopes', 'read'], {
      cwd: root,
      env: { ...process.env, ...environment.env },
      encoding: 'utf8',
      timeout: 60_000,
    });
    const tokens = await (await admin.get('/tokens')).json();
    const names = tokens.tokens.map((token: { name: string }) => token.name);
    if (ON_POSTGRES) {
      expect(result.status).toBe(0);
      expect(names).toContain('from-cli');
      const secret = result.stdout.trim().split('\n').at(-1)!;
      expect((await admin.withToken(secret).get('/packages')).status).toBe(200);
    } else {
      expect(result.status).toBe(1);
      expect(result.stderr).toContain('is in use by process');
      expect(names).not.toContain('from-cli');
    }
    const verified = await admin.get('/events/verify');
    expect(verified.status).toBe(200);
    expect((await verified.json()).ok).toBe(true);
  });
});
