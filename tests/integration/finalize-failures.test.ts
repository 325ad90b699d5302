import fs from 'node:fs';
import path from 'node:path';
import { eq, sql } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { rowsOf, type DatabaseConnection } from '@/db/client';
import { blobs, packages } from '@/db/schema';
import { finalizePackage } from '@/server/registry/finalize';
import { CreatePackage, createPackage } from '@/server/registry/packages';
import type { Backend, BlobWriter } from '@/server/storage/backend';
import type { FilesystemBackend } from '@/server/storage/filesystem';
import { openScratchStore, type ScratchStore } from '../support/scratch-store';

// Finalize stages both manifests before it places either. A failure at any step must leave no staged
// temporary file behind, no blob row, and the package open, so that a retry succeeds.

let store: ScratchStore;
let connection: DatabaseConnection;
let backend: FilesystemBackend;

beforeAll(async () => {
  store = await openScratchStore('finalize-failures-');
  connection = store.database.connection;
  backend = store.backend;
}, 60_000);

afterAll(async () => {
  await store?.close();
});

type Failure = 'create' | 'commit';

/** Returns the backend wrapped so that the `failAt`-th call (1-based) of createWriter or of commit throws. */
function failingBackend(failure: Failure, failAt: number): Backend {
  let calls = 0;
  const fail = () => {
    calls += 1;
    if (calls === failAt) throw new Error(`injected ${failure} failure ${failAt}`);
  };
  return Object.assign(Object.create(Object.getPrototypeOf(backend)) as Backend, backend, {
    id: backend.id,
    kind: backend.kind,
    retrievalTier: backend.retrievalTier,
    createWriter: async (): Promise<BlobWriter> => {
      if (failure === 'create') fail();
      const writer = await backend.createWriter();
      if (failure !== 'commit') return writer;
      return {
        stream: writer.stream,
        commit: async (objectKey: string) => {
          try {
            fail();
          } catch (error) {
            await writer.cancel();
            throw error;
          }
          return writer.commit(objectKey);
        },
        cancel: () => writer.cancel(),
      };
    },
  });
}

async function blobCount(): Promise<number> {
  return Number(rowsOf<{ count: string | number }>(await connection.db.execute(sql`SELECT count(*) AS count FROM ${blobs}`))[0].count);
}

function temporaryFiles(): string[] {
  const temporary = path.join(backend.root, 'tmp');
  return fs.existsSync(temporary) ? fs.readdirSync(temporary) : [];
}

describe('finalize failure paths', () => {
  it('reports the failure, not a failed discard', async () => {
    const input = CreatePackage.parse({ name: 'fail-discard', producer: 'test', subject: 'test', retention_class: 'test' });
    const pkg = await createPackage(connection.db, input, 'test', 65536);
    // The second createWriter fails, and the discard of the first, staged manifest fails after it removed the file.
    let writers = 0;
    const failing = Object.assign(Object.create(Object.getPrototypeOf(backend)) as Backend, backend, {
      createWriter: async (): Promise<BlobWriter> => {
        writers += 1;
        if (writers === 2) throw new Error('injected create failure 2');
        const writer = await backend.createWriter();
        return {
          stream: writer.stream,
          commit: (objectKey: string) => writer.commit(objectKey),
          cancel: async () => {
            await writer.cancel();
            throw new Error('injected cancel failure');
          },
        };
      },
    });

    await expect(finalizePackage(connection.db, failing, pkg.id, 'test')).rejects.toThrow('injected create failure 2');
    expect(temporaryFiles()).toEqual([]);
    expect((await finalizePackage(connection.db, backend, pkg.id, 'test')).status).toBe('finalized');
  });

  it.each<[Failure, number]>([
    ['create', 1],
    ['create', 2],
    ['commit', 1],
    ['commit', 2],
  ])('leaves no staged file when %s call %i fails', async (failure, failAt) => {
    const input = CreatePackage.parse({ name: `fail-${failure}-${failAt}`, producer: 'test', subject: 'test', retention_class: 'test' });
    const pkg = await createPackage(connection.db, input, 'test', 65536);
    const blobsBefore = await blobCount();

    await expect(finalizePackage(connection.db, failingBackend(failure, failAt), pkg.id, 'test')).rejects.toThrow(/injected/);

    expect(temporaryFiles()).toEqual([]);
    const [row] = await connection.db.select({ status: packages.status }).from(packages).where(eq(packages.id, pkg.id));
    expect(row.status).toBe('open');
    expect(await blobCount()).toBe(blobsBefore);

    const finalized = await finalizePackage(connection.db, backend, pkg.id, 'test');
    expect(finalized.status).toBe('finalized');
    expect(temporaryFiles()).toEqual([]);
  });
});
