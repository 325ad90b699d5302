import { and, eq, sql } from 'drizzle-orm';
import type { Executor } from '@/db/client';
import { storageLocations } from '@/db/schema';
import { appendEvent } from '../registry/events';
import { lockBlob } from '../registry/files';

export type LocationFailure = 'corrupt' | 'missing';

export interface LocationRef {
  contentAddress: string;
  backendId: string;
  objectKey: string;
}

/**
 * Marks a stored copy as failed (`corrupt` or `missing`) and sets its verified_at to the database's
 * time, under the blob's advisory lock. A copy that was `ok` before also gets a `storage.location_failed` event in the same
 * transaction. A copy already failed is only updated, so repeated checks do not repeat the event.
 * `confirm`, when given, runs under the lock and returns false when the failure no longer holds (a repair
 * replaced the copy meanwhile). Returns false when nothing was recorded: the copy passed `confirm`, or
 * its row no longer exists because retention removed the blob.
 */
export async function recordLocationFailure(
  db: Executor,
  location: LocationRef,
  status: LocationFailure,
  detail: string,
  actor: string,
  confirm?: () => Promise<boolean>,
): Promise<boolean> {
  return db.transaction(async (tx) => {
    await lockBlob(tx, location.contentAddress);
    const where = and(eq(storageLocations.contentAddress, location.contentAddress), eq(storageLocations.backendId, location.backendId));
    const [row] = await tx.select().from(storageLocations).where(where);
    if (!row) return false;
    if (confirm && !(await confirm())) return false;

    await tx.update(storageLocations).set({ status, verifiedAt: sql`now()` }).where(where);
    if (row.status === 'ok') {
      await appendEvent(tx, {
        eventType: 'storage.location_failed',
        subjectKind: 'blob',
        subjectId: location.contentAddress,
        actor,
        payload: {
          content_address: location.contentAddress,
          backend_id: location.backendId,
          object_key: location.objectKey,
          status,
          detail,
        },
      });
    }
    return true;
  });
}

/** Sets verified_at of a copy that passed a check to the database's time; returns false when the row no longer exists. */
export async function recordLocationVerified(db: Executor, location: LocationRef): Promise<boolean> {
  const updated = await db
    .update(storageLocations)
    .set({ verifiedAt: sql`now()` })
    .where(and(eq(storageLocations.contentAddress, location.contentAddress), eq(storageLocations.backendId, location.backendId), eq(storageLocations.status, 'ok')))
    .returning({ backendId: storageLocations.backendId });
  return updated.length > 0;
}
