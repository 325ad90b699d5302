import crypto from 'node:crypto';
import { eq, sql } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connectDatabase, rowsOf, type DatabaseConnection } from '@/db/client';
import { blobs, events, files } from '@/db/schema';
import { recordFileInBatch, type BatchedFileInput } from '@/server/registry/file-batches';
import type { FileRecord } from '@/server/registry/files';
import { CreatePackage, createPackage } from '@/server/registry/packages';
import type { FilesystemBackend } from '@/server/storage/filesystem';
import { ON_POSTGRES, type ScratchDatabase } from '../support/database';
import { openScratchStore, type ScratchStore } from '../support/scratch-store';

// A batch of small files places its blobs while its insert runs, and commits only when every blob is in
// place. A blob that cannot be placed fails the whole batch, and the batch keeps its locks until every
// other placement has settled.

let store: ScratchStore;
let database: ScratchDatabase;
let connection: DatabaseConnection;
let backend: FilesystemBackend;

beforeAll(async () => {
  store = await openScratchStore('file-batch-placement-');
  ({ database, backend } = store);
  connection = database.connection;
}, 60_000);

afterAll(async () => {
  await store?.close();
});

/** Returns a promise and the function that resolves it. */
function gate(): { opened: Promise<void>; open(): void } {
  let open!: () => void;
  const opened = new Promise<void>((resolve) => (open = resolve));
  return { opened, open };
}

async function newPackage(name: string): Promise<string> {
  const input = CreatePackage.parse({ name, producer: 'test', subject: 'test', retention_class: 'test' });
  return (await createPackage(connection.db, input, 'test', 65536)).id;
}

/** Returns a file of the package with random digests, placed by `placeBlob`. */
function fileInput(packageId: string, relativePath: string, placeBlob: BatchedFileInput['placeBlob']): BatchedFileInput {
  return {
    packageId,
    relativePath,
    mediaType: 'application/octet-stream',
    content: { blake3Hex: crypto.randomBytes(32).toString('hex'), sha256Hex: crypto.randomBytes(32).toString('hex'), sizeBytes: 4 },
    backend,
    actor: 'test',
    placeBlob,
  };
}

/** Returns whether the promise has settled so far, and its record or error once it has. */
function outcomeOf(promise: Promise<FileRecord>): { settled: boolean; result: Promise<FileRecord | Error> } {
  let settled = false;
  const result = promise.then(
    (record) => {
      settled = true;
      return record;
    },
    (error: Error) => {
      settled = true;
      return error;
    },
  );
  return {
    get settled() {
      return settled;
    },
    result,
  };
}

/** Returns a placement that waits for `release`, with a promise that resolves once it has started. */
function slowPlacement(): { started: Promise<void>; release(): void; placeBlob: BatchedFileInput['placeBlob'] } {
  const started = gate();
  const released = gate();
  return {
    started: started.opened,
    release: released.open,
    placeBlob: async () => {
      started.open();
      await released.opened;
    },
  };
}

/** Counts the package's file rows and its `file.added` events. */
async function stored(packageId: string): Promise<{ files: number; events: number }> {
  const fileRows = await connection.db.select({ id: files.id }).from(files).where(eq(files.packageId, packageId));
  const eventRows = await connection.db
    .select({ sequence: events.sequence })
    .from(events)
    .where(sql`${events.subjectId} = ${packageId} AND ${events.eventType} = 'file.added'`);
  return { files: fileRows.length, events: eventRows.length };
}

describe('placing the blobs of a batch', () => {
  it('fails the batch on a failed placement', async () => {
    const packageId = await newPackage('placement-failure');
    // The first file's batch waits in its placement, so the next three queue up and form one batch.
    const firstPlaced = gate();
    const first = outcomeOf(recordFileInBatch(connection.db, fileInput(packageId, 'first.bin', () => firstPlaced.opened)));
    const placedKeys: string[] = [];
    const place = (objectKey: string) => {
      placedKeys.push(objectKey);
      return Promise.resolve();
    };
    const rest = [
      outcomeOf(recordFileInBatch(connection.db, fileInput(packageId, 'a.bin', place))),
      outcomeOf(recordFileInBatch(connection.db, fileInput(packageId, 'b.bin', () => Promise.reject(new Error('injected placement failure'))))),
      outcomeOf(recordFileInBatch(connection.db, fileInput(packageId, 'c.bin', place))),
    ];
    firstPlaced.open();

    expect(await first.result).toMatchObject({ relative_path: 'first.bin' });
    for (const outcome of rest) expect(await outcome.result).toEqual(new Error('injected placement failure'));
    expect(placedKeys).toHaveLength(2);
    expect(await stored(packageId)).toEqual({ files: 1, events: 1 });
    const blobRows = rowsOf<{ count: string | number }>(await connection.db.execute(sql`SELECT count(*) AS count FROM ${blobs}`));
    expect(Number(blobRows[0].count)).toBe(1);
  });

  it('holds locks until placements settle', async () => {
    const packageId = await newPackage('placement-pending');
    const firstPlaced = gate();
    const first = outcomeOf(recordFileInBatch(connection.db, fileInput(packageId, 'first.bin', () => firstPlaced.opened)));
    const slowPlace = slowPlacement();
    const slowInput = fileInput(packageId, 'slow.bin', slowPlace.placeBlob);
    const failing = outcomeOf(recordFileInBatch(connection.db, fileInput(packageId, 'failing.bin', () => Promise.reject(new Error('injected placement failure')))));
    const slow = outcomeOf(recordFileInBatch(connection.db, slowInput));
    firstPlaced.open();
    await first.result;
    await slowPlace.started;

    // The failed placement is known at once, but the batch still holds the slow blob's lock.
    await new Promise((resolve) => setTimeout(resolve, 200));
    expect(failing.settled).toBe(false);
    if (database.url !== undefined) {
      const other = await connectDatabase({ databaseUrl: database.url, pgliteDir: '' });
      try {
        const lockKey = sql`hashtextextended(${`blake3:${slowInput.content.blake3Hex}`}, 0)`;
        const [{ locked }] = rowsOf<{ locked: boolean }>(await other.db.execute(sql`SELECT pg_try_advisory_lock(${lockKey}) AS locked`));
        expect(locked).toBe(false);
      } finally {
        await other.close();
      }
    }

    slowPlace.release();
    expect(await failing.result).toEqual(new Error('injected placement failure'));
    expect(await slow.result).toEqual(new Error('injected placement failure'));
    expect(await stored(packageId)).toEqual({ files: 1, events: 1 });
  });

  // PGlite has one connection, so there a transaction of another package waits for the batch in any case.
  it.skipIf(!ON_POSTGRES)('lets other packages record during a placement', async () => {
    const slowPackage = await newPackage('slow-placement');
    const otherPackage = await newPackage('other-package');
    const slowPlace = slowPlacement();
    const slow = outcomeOf(recordFileInBatch(connection.db, fileInput(slowPackage, 'slow.bin', slowPlace.placeBlob)));
    try {
      await slowPlace.started;
      // Wait until the slow batch has inserted its rows, which it does while the placement is pending.
      await new Promise((resolve) => setTimeout(resolve, 200));

      // The other package's file appends an event, so it needs the event log's head.
      const other = outcomeOf(recordFileInBatch(connection.db, fileInput(otherPackage, 'other.bin', () => Promise.resolve())));
      const timedOut = new Promise<'timed out'>((resolve) => setTimeout(() => resolve('timed out'), 5000));
      const result = await Promise.race([other.result, timedOut]);
      expect(result).toMatchObject({ relative_path: 'other.bin' });
      expect(slow.settled).toBe(false);
    } finally {
      slowPlace.release();
    }
    expect(await slow.result).toMatchObject({ relative_path: 'slow.bin' });
    expect(await stored(slowPackage)).toEqual({ files: 1, events: 1 });
  });

  it('waits for placements after a failed insert', async () => {
    const packageId = await newPackage('insert-failure');
    // A trigger makes the batch's insert fail while the slow file's placement is still running.
    await connection.db.execute(
      sql.raw(`CREATE FUNCTION reject_injected_path() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
          IF NEW.relative_path = 'insert-failure.bin' THEN RAISE EXCEPTION 'injected insert failure'; END IF;
          RETURN NEW;
        END $$`),
    );
    await connection.db.execute(sql.raw('CREATE TRIGGER reject_injected_path BEFORE INSERT ON files FOR EACH ROW EXECUTE FUNCTION reject_injected_path()'));
    const firstPlaced = gate();
    const slowPlace = slowPlacement();
    try {
      const first = outcomeOf(recordFileInBatch(connection.db, fileInput(packageId, 'first.bin', () => firstPlaced.opened)));
      const slow = outcomeOf(recordFileInBatch(connection.db, fileInput(packageId, 'slow.bin', slowPlace.placeBlob)));
      const failing = outcomeOf(recordFileInBatch(connection.db, fileInput(packageId, 'insert-failure.bin', () => Promise.resolve())));
      firstPlaced.open();
      await first.result;
      await slowPlace.started;

      // The insert has failed by now, and the database has released the batch's locks with it. The batch
      // still waits for the slow placement, so nothing it started runs after its requests got their responses.
      await new Promise((resolve) => setTimeout(resolve, 200));
      expect(slow.settled).toBe(false);
      expect(failing.settled).toBe(false);

      slowPlace.release();
      expect(messagesOf(await slow.result)).toContain('injected insert failure');
      expect(messagesOf(await failing.result)).toContain('injected insert failure');
      expect(await stored(packageId)).toEqual({ files: 1, events: 1 });
    } finally {
      // A failed check above must not leave the batch waiting for its placements when the database closes.
      firstPlaced.open();
      slowPlace.release();
      await connection.db.execute(sql.raw('DROP TRIGGER IF EXISTS reject_injected_path ON files'));
      await connection.db.execute(sql.raw('DROP FUNCTION IF EXISTS reject_injected_path()'));
    }
  });
});

/** Returns the messages of an error and of its causes, one a line. */
function messagesOf(error: unknown): string {
  const messages: string[] = [];
  for (let current = error; current instanceof Error; current = current.cause) messages.push(current.message);
  return messages.join('\n');
}
