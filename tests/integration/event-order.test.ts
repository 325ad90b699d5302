import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import pino from 'pino';
import { connectDatabase, type DatabaseConnection } from '@/db/client';
import { appendEvent, headSequence } from '@/server/registry/events';
import { EventHub } from '@/server/registry/event-hub';
import { pollEvents } from '@/server/registry/event-feed';
import type { AppContext } from '@/server/app-context';
import { createTestDatabase, ON_POSTGRES } from '../support/database';

const ROOT = path.resolve(import.meta.dirname, '../..');
let writer: DatabaseConnection;
let reader: DatabaseConnection;
let app: AppContext;
let cleanup: () => Promise<void>;

beforeAll(async () => {
  const migrationsFolder = path.join(ROOT, 'db/migrations');
  if (ON_POSTGRES) {
    const database = await createTestDatabase();
    writer = await connectDatabase({ databaseUrl: database.url, pgliteDir: '', migrationsFolder });
    reader = await connectDatabase({ databaseUrl: database.url, pgliteDir: '', migrationsFolder });
    cleanup = async () => {
      await writer.close();
      await reader.close();
      await database.drop();
    };
  } else {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'artifact-store-events-'));
    writer = await connectDatabase({ pgliteDir: dir, migrationsFolder });
    reader = writer;
    cleanup = async () => {
      await writer.close();
      fs.rmSync(dir, { recursive: true, force: true });
    };
  }
  const log = pino({ level: 'silent' });
  app = { db: reader.db, eventHub: await EventHub.start(reader, log), log } as unknown as AppContext;
});

afterAll(async () => cleanup?.());

const event = (subjectId: string) => ({ eventType: 'test.event', subjectKind: 'package' as const, subjectId, actor: 'test', payload: { subjectId } });
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe('event log ordering', () => {
  it('delivers a late-committing transaction and the one that overtook it, in order, without a gap', async () => {
    const start = await headSequence(reader.db);

    const slow = writer.db.transaction(async (tx) => {
      await appendEvent(tx, event('slow'));
      await sleep(2000);
    });
    await sleep(100);
    const fast = writer.db.transaction(async (tx) => {
      await appendEvent(tx, event('fast'));
    });

    const seen: { sequence: number; subject_id: string }[] = [];
    let since = start;
    const deadline = Date.now() + 10_000;
    while (seen.length < 2 && Date.now() < deadline) {
      const batch = await pollEvents(app, { since, limit: 500, waitSeconds: 5 });
      seen.push(...batch);
      if (batch.length > 0) since = batch[batch.length - 1].sequence;
    }
    await Promise.all([slow, fast]);

    expect(seen.map((item) => item.subject_id).sort()).toEqual(['fast', 'slow']);
    expect(seen.map((item) => item.sequence)).toEqual([start + 1, start + 2]);
  });

  it('loses nothing when a thousand writes land while polls start waiting', async () => {
    const start = await headSequence(reader.db);
    const total = 1000;
    const writes = (async () => {
      for (let index = 0; index < total; index += 10) {
        await Promise.all(
          Array.from({ length: 10 }, (_, offset) => writer.db.transaction((tx) => appendEvent(tx, event(`bulk-${index + offset}`)))),
        );
        if (index % 100 === 0) await sleep(5);
      }
    })();

    const sequences: number[] = [];
    let since = start;
    const deadline = Date.now() + 60_000;
    while (sequences.length < total && Date.now() < deadline) {
      const batch = await pollEvents(app, { since, limit: 500, waitSeconds: 5 });
      for (const item of batch) sequences.push(item.sequence);
      if (batch.length > 0) since = batch[batch.length - 1].sequence;
    }
    await writes;

    expect(sequences).toHaveLength(total);
    expect(sequences).toEqual(Array.from({ length: total }, (_, index) => start + index + 1));
  });

  it('wakes a waiting poll as soon as an event commits', async () => {
    const start = await headSequence(reader.db);
    const began = Date.now();
    const poll = pollEvents(app, { since: start, limit: 10, waitSeconds: 20 });
    await sleep(200);
    await writer.db.transaction((tx) => appendEvent(tx, event('wake')));
    const batch = await poll;
    expect(batch.map((item) => item.subject_id)).toEqual(['wake']);
    expect(Date.now() - began).toBeLessThan(5000);
  });
});
