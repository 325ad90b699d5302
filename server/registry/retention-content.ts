import { and, eq, inArray, sql, type SQL } from 'drizzle-orm';
import { rowsOf, type Executor } from '@/db/client';
import { blobs, files, storageLocations } from '@/db/schema';
import type { Backend } from '../storage/backend';
import { appendEvent } from './events';
import { lockBlob } from './files';
import type { SweepContext } from './retention-sweep';
import { z } from 'zod';

export const BlobRemoval = z.object({
  content_address: z.string(),
  size_bytes: z.number().int().min(0),
  objects: z.array(z.string()).meta({ description: 'The backend objects deleted, as `<backend_id>:<object_key>`.' }),
});
export type BlobRemoval = z.infer<typeof BlobRemoval>;

export const OrphanRemoval = z.object({
  backend_id: z.string(),
  object_key: z.string(),
  size_bytes: z.number().int().min(0),
  modified_at: z.iso.datetime(),
});
export type OrphanRemoval = z.infer<typeof OrphanRemoval>;

/** How many listed objects are checked against storage_locations in one query. */
const ORPHAN_BATCH_SIZE = 500;

/**
 * True when no file of a package that is not deleted and no package manifest (of any package, deleted
 * ones included, since a tombstone keeps its manifest) references the content address. Each manifest
 * column has its own NOT EXISTS because PostgreSQL cannot hash a join on `cbor = x OR json = x`. With
 * one NOT EXISTS and no index, the sweep's query compared every storage location with every package.
 */
function isUnreferenced(contentAddress: SQL | string): SQL {
  return sql`NOT EXISTS (
      SELECT 1 FROM files f JOIN packages p ON p.id = f.package_id
      WHERE f.content_address = ${contentAddress} AND p.status <> 'deleted')
    AND NOT EXISTS (SELECT 1 FROM packages p WHERE p.manifest_cbor_address = ${contentAddress})
    AND NOT EXISTS (SELECT 1 FROM packages p WHERE p.manifest_json_address = ${contentAddress})`;
}

/** Returns the query of the content addresses that have a storage location but no live reference. */
export function unreferencedBlobsQuery(): SQL {
  return sql`
    SELECT DISTINCT sl.content_address FROM storage_locations sl
    WHERE ${isUnreferenced(sql`sl.content_address`)}
    ORDER BY sl.content_address`;
}

/**
 * Removes the stored content of every blob that still has a storage location but no live reference.
 *
 * Each blob is handled in its own transaction that first takes the blob's advisory lock, the lock an
 * upload holds from placing the same content until its file row commits. Under the lock the reference
 * check is repeated, the objects are deleted from their backends, the storage location rows are deleted
 * and `blob.removed` is written. The blobs row stays while file rows of deleted packages reference it
 * (files.content_address is a foreign key, and the tombstone keeps those rows); it is deleted only when
 * no file row references it at all.
 * NOTE: the objects are deleted before the transaction commits. If the commit then fails, the location
 * rows remain and point at missing objects until the next sweep removes them.
 */
export async function removeUnreferencedBlobs(app: SweepContext, actor: string): Promise<BlobRemoval[]> {
  const candidates = rowsOf<{ content_address: string }>(await app.db.execute(unreferencedBlobsQuery()));

  const removed: BlobRemoval[] = [];
  for (const { content_address: contentAddress } of candidates) {
    try {
      const removal = await removeBlobContent(app, contentAddress, actor);
      if (removal) {
        removed.push(removal);
        app.log.info({ content_address: contentAddress, objects: removal.objects }, 'retention removed the content of an unreferenced blob');
      }
    } catch (error) {
      app.log.error({ err: error, content_address: contentAddress }, 'retention failed to remove an unreferenced blob; the next sweep retries it');
    }
  }
  return removed;
}

async function removeBlobContent(app: SweepContext, contentAddress: string, actor: string): Promise<BlobRemoval | null> {
  return app.db.transaction(async (tx) => {
    await lockBlob(tx, contentAddress);
    const check = rowsOf<{ unreferenced: boolean }>(await tx.execute(sql`SELECT ${isUnreferenced(contentAddress)} AS unreferenced`));
    if (!check[0].unreferenced) return null;

    const [blob] = await tx.select().from(blobs).where(eq(blobs.contentAddress, contentAddress));
    const locations = await tx.select().from(storageLocations).where(eq(storageLocations.contentAddress, contentAddress));
    const removable = locations.filter((location) => {
      if (app.backends.has(location.backendId)) return true;
      app.log.warn({ content_address: contentAddress, backend_id: location.backendId }, 'retention kept a storage location of an unconfigured backend');
      return false;
    });
    if (!blob || removable.length === 0) return null;

    for (const location of removable) {
      await app.backends.get(location.backendId)!.delete(location.objectKey);
    }
    await tx
      .delete(storageLocations)
      .where(and(eq(storageLocations.contentAddress, contentAddress), inArray(storageLocations.backendId, removable.map((location) => location.backendId))));
    const referencingFiles = await tx.select({ id: files.id }).from(files).where(eq(files.contentAddress, contentAddress)).limit(1);
    if (referencingFiles.length === 0 && removable.length === locations.length) {
      await tx.delete(blobs).where(eq(blobs.contentAddress, contentAddress));
    }

    const objects = removable.map((location) => `${location.backendId}:${location.objectKey}`);
    await appendEvent(tx, {
      eventType: 'blob.removed',
      subjectKind: 'blob',
      subjectId: contentAddress,
      actor,
      payload: { content_address: contentAddress, size_bytes: blob.sizeBytes, objects, reason: 'unreferenced' },
    });
    return { content_address: contentAddress, size_bytes: blob.sizeBytes, objects };
  });
}

/**
 * Deletes objects that no storage location row references, once their modification time is older than
 * ORPHAN_SAFETY_WINDOW_SECONDS before `now`. Such objects come from a write whose transaction rolled
 * back or from a crash between placing the bytes and committing. Each deletion happens under the blob's
 * advisory lock after checking the row again, so an upload that is placing the same content is never
 * undone. Backends without list() are skipped.
 */
export async function removeOrphanObjects(app: SweepContext, now: Date): Promise<OrphanRemoval[]> {
  const cutoff = now.getTime() - app.settings.ORPHAN_SAFETY_WINDOW_SECONDS * 1000;
  const removed: OrphanRemoval[] = [];

  for (const backend of app.backends.values()) {
    if (!backend.list) continue;
    let batch: { objectKey: string; sizeBytes: number; modifiedAt: Date }[] = [];
    const flush = async () => {
      removed.push(...(await removeOrphansInBatch(app, backend, batch)));
      batch = [];
    };
    for await (const object of backend.list()) {
      if (object.modifiedAt.getTime() > cutoff) continue;
      batch.push(object);
      if (batch.length >= ORPHAN_BATCH_SIZE) await flush();
    }
    await flush();
  }
  return removed;
}

async function removeOrphansInBatch(
  app: SweepContext,
  backend: Backend,
  batch: { objectKey: string; sizeBytes: number; modifiedAt: Date }[],
): Promise<OrphanRemoval[]> {
  if (batch.length === 0) return [];
  const known = await app.db
    .select({ objectKey: storageLocations.objectKey })
    .from(storageLocations)
    .where(and(eq(storageLocations.backendId, backend.id), inArray(storageLocations.objectKey, batch.map((object) => object.objectKey))));
  const knownKeys = new Set(known.map((row) => row.objectKey));

  const removed: OrphanRemoval[] = [];
  for (const object of batch) {
    if (knownKeys.has(object.objectKey)) continue;
    try {
      if (await removeOrphan(app.db, backend, object.objectKey)) {
        const removal = { backend_id: backend.id, object_key: object.objectKey, size_bytes: object.sizeBytes, modified_at: object.modifiedAt.toISOString() };
        removed.push(removal);
        app.log.warn(removal, 'retention removed an orphaned object that no storage location referenced');
      }
    } catch (error) {
      app.log.error({ err: error, backend_id: backend.id, object_key: object.objectKey }, 'retention failed to remove an orphaned object; the next sweep retries it');
    }
  }
  return removed;
}

async function removeOrphan(db: SweepContext['db'], backend: Backend, objectKey: string): Promise<boolean> {
  // Object keys are blake3/<2 hex>/<2 hex>/<64 hex>, so the last segment is the digest.
  const contentAddress = `blake3:${objectKey.slice(objectKey.lastIndexOf('/') + 1)}`;
  return db.transaction(async (tx: Executor) => {
    await lockBlob(tx, contentAddress);
    const rows = await tx
      .select({ objectKey: storageLocations.objectKey })
      .from(storageLocations)
      .where(and(eq(storageLocations.backendId, backend.id), eq(storageLocations.objectKey, objectKey)));
    if (rows.length > 0) return false;
    await backend.delete(objectKey);
    return true;
  });
}
