import { and, eq, isNull, lt } from 'drizzle-orm';
import { isUniqueViolation, type Database } from '@/db/client';
import { uploads } from '@/db/schema';
import { ConflictError } from '../errors';
import { appendEvent } from '../registry/events';
import { normalizeMediaType } from '../registry/files';
import { assertNoObstacles, getPackageWithPathObstacles } from '../registry/path-checks';
import { assertOpen } from '../registry/packages';
import { normalizeRelativePath } from '../registry/relative-path';

export type UploadRow = typeof uploads.$inferSelect;

export interface NewUpload {
  id: string;
  packageId: string;
  relativePath: string;
  mediaType: string | null | undefined;
  /** Null while the length is deferred (Upload-Defer-Length: 1). */
  uploadLength: number | null;
  actor: string;
  expiresAt: Date;
}

export async function findUpload(db: Database, id: string): Promise<UploadRow | undefined> {
  const [row] = await db.select().from(uploads).where(eq(uploads.id, id));
  return row;
}

/**
 * Reserves the target path of a new upload and writes `upload.created`, in one transaction. Checks that
 * the package is open (holding its row shared, as adding a file does) and that no file has the path. The
 * partial unique index on unfinished uploads turns a second upload to the path, also a racing one, into 409.
 * Returns the normalized path and media type.
 */
export async function createUploadRecord(db: Database, input: NewUpload): Promise<{ relativePath: string; mediaType: string }> {
  const relativePath = normalizeRelativePath(input.relativePath);
  const mediaType = normalizeMediaType(input.mediaType);

  try {
    await db.transaction(async (tx) => {
      const { pkg, obstacles } = await getPackageWithPathObstacles(tx, { packageId: input.packageId, relativePath, lock: true });
      assertOpen(pkg, 'adding files');
      assertNoObstacles(pkg.id, relativePath, obstacles);
      // Checked again now that the path's locks are held. The first check's snapshot predates them, so it
      // can miss a file that a raw PUT committed just before this transaction acquired them.
      const { obstacles: obstaclesUnderLock } = await getPackageWithPathObstacles(tx, { packageId: pkg.id, relativePath, lock: false });
      assertNoObstacles(pkg.id, relativePath, obstaclesUnderLock);

      await tx.insert(uploads).values({
        id: input.id,
        packageId: pkg.id,
        relativePath,
        mediaType,
        uploadLength: input.uploadLength,
        createdBy: input.actor,
        expiresAt: input.expiresAt,
      });
      await appendEvent(tx, {
        eventType: 'upload.created',
        subjectKind: 'upload',
        subjectId: input.id,
        actor: input.actor,
        payload: {
          upload_id: input.id,
          package_id: pkg.id,
          relative_path: relativePath,
          media_type: mediaType,
          upload_length: input.uploadLength,
          expires_at: input.expiresAt.toISOString(),
        },
      });
    });
  } catch (error) {
    if (isUniqueViolation(error)) {
      throw new ConflictError(`An unfinished upload already targets "${relativePath}" in package ${input.packageId}; finish or terminate it first.`, {
        path: relativePath,
      });
    }
    throw error;
  }
  return { relativePath, mediaType };
}

/**
 * Marks an unfinished upload as ended without a file and writes `upload.terminated` (a DELETE) or
 * `upload.expired` (the cleanup), in one transaction. Returns false when the upload had already finished,
 * ended or never existed, and then writes nothing.
 */
export async function endUpload(db: Database, id: string, eventType: 'upload.terminated' | 'upload.expired', actor: string): Promise<boolean> {
  return db.transaction(async (tx) => {
    const [row] = await tx
      .update(uploads)
      .set({ terminated: true })
      .where(and(eq(uploads.id, id), isNull(uploads.completedAt), eq(uploads.terminated, false)))
      .returning();
    if (!row) return false;
    await appendEvent(tx, {
      eventType,
      subjectKind: 'upload',
      subjectId: id,
      actor,
      payload: { upload_id: id, package_id: row.packageId, relative_path: row.relativePath },
    });
    return true;
  });
}

/** Unfinished uploads whose expiry time has passed. */
export async function listExpiredUploads(db: Database, now: Date): Promise<UploadRow[]> {
  return db
    .select()
    .from(uploads)
    .where(and(isNull(uploads.completedAt), eq(uploads.terminated, false), lt(uploads.expiresAt, now)));
}
