import { execFile } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { sql } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connectDatabase } from '@/db/client';
import { blake3Hex } from '@/server/digest/blake3-hex';
import { encodeCanonicalCbor } from '@/server/encoding/cbor';
import { computeChainDigestHex, GENESIS_CHAIN_DIGEST_HEX } from '@/server/integrity/event-chain';
import { verifyEventExportFile } from '@/server/integrity/verify-events';
import { ApiClient } from '../support/client';
import { ON_POSTGRES } from '../support/database';
import { createTestEnvironment, startServer, type TestEnvironment, type TestServer } from '../support/server';

const ROOT = path.resolve(import.meta.dirname, '../..');
const run = promisify(execFile);

let environment: TestEnvironment;
let server: TestServer;
let api: ApiClient;
let lastSequence: number;

beforeAll(async () => {
  environment = await createTestEnvironment({ SCRUB_INTERVAL_SECONDS: '0', SWEEP_INTERVAL_SECONDS: '0' });
  server = await startServer(environment);
  api = new ApiClient(server.url, environment.adminToken);

  // Twenty events or more: package creations, file additions and finalizations.
  for (let index = 0; index < 6; index += 1) {
    const pkg = await api.createPackage({ name: `chain-${index}` });
    expect((await api.putFile(pkg.id, 'a.txt', `file ${index}`)).status).toBe(201);
    expect((await api.putFile(pkg.id, 'b.txt', `other ${index}`)).status).toBe(201);
    expect((await api.post(`/packages/${pkg.id}/finalize`)).status).toBe(200);
  }
  const { events } = await api.events(0);
  lastSequence = events[events.length - 1].sequence;
  expect(lastSequence).toBeGreaterThanOrEqual(20);
});

afterAll(async () => {
  await server?.stop();
  await environment?.cleanup();
});

/**
 * Runs SQL against the test's database. PostgreSQL is edited while the server runs; PGlite allows one
 * process, so the server is stopped, the database edited in this process and the server restarted.
 */
async function editDatabase(statements: (execute: (query: ReturnType<typeof sql>) => Promise<void>) => Promise<void>): Promise<void> {
  if (ON_POSTGRES) {
    const connection = await connectDatabase({ databaseUrl: environment.env.DATABASE_URL, pgliteDir: '', migrationsFolder: path.join(ROOT, 'db/migrations') });
    try {
      await statements(async (query) => void (await connection.db.execute(query)));
    } finally {
      await connection.close();
    }
    return;
  }
  await server.stop();
  const connection = await connectDatabase({ pgliteDir: path.join(environment.dir, 'data', 'pglite'), migrationsFolder: path.join(ROOT, 'db/migrations') });
  try {
    await statements(async (query) => void (await connection.db.execute(query)));
  } finally {
    await connection.close();
  }
  server = await startServer(environment);
  api = new ApiClient(server.url, environment.adminToken);
}

async function verifyOnServer(): Promise<Record<string, any>> {
  const response = await api.get('/events/verify');
  expect(response.status).toBe(200);
  return response.json();
}

async function exportLog(format: 'cbor-seq' | 'jsonl'): Promise<string> {
  const response = await api.get(`/events/export?format=${format}`);
  expect(response.status).toBe(200);
  const file = path.join(environment.dir, `events-${Date.now()}.${format}`);
  fs.writeFileSync(file, Buffer.from(await response.arrayBuffer()));
  return file;
}

async function runVerifyCli(exportFile: string): Promise<{ code: number; stderr: string }> {
  try {
    const { stderr } = await run(process.execPath, [path.join(ROOT, 'node_modules/tsx/dist/cli.mjs'), path.join(ROOT, 'scripts/verify.ts'), '--events', exportFile], { cwd: ROOT });
    return { code: 0, stderr };
  } catch (error) {
    const failed = error as { code: number; stderr: string };
    return { code: failed.code, stderr: failed.stderr };
  }
}

describe('event chain on the wire', () => {
  it('chains each event to the one before', async () => {
    const { events } = await api.events(0);
    const exported = await exportLog('cbor-seq');
    expect(await verifyEventExportFile(exported)).toMatchObject({ ok: true, checked: lastSequence });

    const [first, second] = events;
    expect(first.sequence).toBe(1);
    expect(first.chain_digest_hex).toBe(computeChainDigestHex(GENESIS_CHAIN_DIGEST_HEX, first));
    expect(second.chain_digest_hex).toBe(computeChainDigestHex(first.chain_digest_hex, second));
  });

  it('verifies an untouched log on the server and offline', async () => {
    expect(await verifyOnServer()).toMatchObject({ ok: true, checked: lastSequence, first_bad_sequence: null, reason: null });
    const partial = await (await api.get(`/events/verify?from=5&to=10`)).json();
    expect(partial).toMatchObject({ ok: true, checked: 6 });

    for (const format of ['cbor-seq', 'jsonl'] as const) {
      const file = await exportLog(format);
      expect(await verifyEventExportFile(file)).toMatchObject({ ok: true, checked: lastSequence });
      expect((await runVerifyCli(file)).code).toBe(0);
    }
  });
});

// Each tampering hits an earlier sequence than the one before, so each check names a new first bad event.
describe('tampered event log', () => {
  it('names a deleted event', async () => {
    const target = lastSequence - 2;
    await editDatabase(async (execute) => execute(sql`DELETE FROM events WHERE sequence = ${target}`));

    expect(await verifyOnServer()).toMatchObject({ ok: false, first_bad_sequence: target, reason: 'missing_event' });
    const file = await exportLog('cbor-seq');
    expect(await verifyEventExportFile(file)).toMatchObject({ ok: false, first_bad_sequence: target, reason: 'missing_event' });
  });

  it('names an edited payload even with its digest updated', async () => {
    const target = lastSequence - 6;
    const payload = Buffer.from(encodeCanonicalCbor({ forged: true }));
    await editDatabase(async (execute) =>
      execute(sql`UPDATE events SET payload = ${payload}, payload_digest_hex = ${blake3Hex(payload)} WHERE sequence = ${target}`),
    );

    expect(await verifyOnServer()).toMatchObject({ ok: false, first_bad_sequence: target, reason: 'chain_digest_mismatch' });
    const file = await exportLog('jsonl');
    expect(await verifyEventExportFile(file)).toMatchObject({ ok: false, first_bad_sequence: target });
    const cli = await runVerifyCli(file);
    expect(cli.code).toBe(3);
    expect(cli.stderr).toContain(`bad event sequence ${target}`);
  });

  it('names an edited payload', async () => {
    const target = lastSequence - 9;
    await editDatabase(async (execute) => execute(sql`UPDATE events SET payload = ${Buffer.from(encodeCanonicalCbor({ edited: 1 }))} WHERE sequence = ${target}`));
    expect(await verifyOnServer()).toMatchObject({ ok: false, first_bad_sequence: target, reason: 'payload_digest_mismatch' });
  });

  it('names the first of two swapped events', async () => {
    const first = lastSequence - 13;
    const second = lastSequence - 12;
    await editDatabase(async (execute) => {
      await execute(sql`UPDATE events SET sequence = -1 WHERE sequence = ${first}`);
      await execute(sql`UPDATE events SET sequence = ${first} WHERE sequence = ${second}`);
      await execute(sql`UPDATE events SET sequence = ${second} WHERE sequence = -1`);
    });

    expect(await verifyOnServer()).toMatchObject({ ok: false, first_bad_sequence: first, reason: 'chain_digest_mismatch' });
    const file = await exportLog('cbor-seq');
    expect(await verifyEventExportFile(file)).toMatchObject({ ok: false, first_bad_sequence: first, reason: 'chain_digest_mismatch' });
    const cli = await runVerifyCli(file);
    expect(cli.code).toBe(3);
    expect(cli.stderr).toContain(`bad event sequence ${first}`);
  });

  it('still verifies the range before the damage', async () => {
    const before = lastSequence - 14;
    expect(await (await api.get(`/events/verify?to=${before}`)).json()).toMatchObject({ ok: true, checked: before });
  });
});

describe('upgraded database', () => {
  it('fills in chain digests missing after the migration', async () => {
    const pristine = await createTestEnvironment({ SCRUB_INTERVAL_SECONDS: '0', SWEEP_INTERVAL_SECONDS: '0' });
    try {
      // The environment's token creation wrote chained events; clearing the digests gives the state of a
      // database migrated from before the chain existed.
      const clear = async (execute: (query: ReturnType<typeof sql>) => Promise<void>) => {
        await execute(sql`UPDATE events SET chain_digest_hex = NULL`);
        await execute(sql`UPDATE event_log_head SET chain_digest_hex = NULL`);
      };
      const connection = await connectDatabase({
        databaseUrl: pristine.env.DATABASE_URL,
        pgliteDir: path.join(pristine.dir, 'data', 'pglite'),
        migrationsFolder: path.join(ROOT, 'db/migrations'),
      });
      try {
        await clear(async (query) => void (await connection.db.execute(query)));
      } finally {
        await connection.close();
      }

      const upgraded = await startServer(pristine);
      try {
        const client = new ApiClient(upgraded.url, pristine.adminToken);
        await client.createPackage({ name: 'after-upgrade' });
        const report = await (await client.get('/events/verify')).json();
        expect(report.ok).toBe(true);
        expect(report.checked).toBeGreaterThanOrEqual(2);
      } finally {
        await upgraded.stop();
      }
    } finally {
      await pristine.cleanup();
    }
  });
});

