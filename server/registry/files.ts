import crypto from 'node:crypto';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { and, asc, eq, gt, inArray, sql } from 'drizzle-orm';
import { z } from 'zod';
import { queryInteger } from '../http/body';
import { isUniqueViolation, rowsOf, type Database, type Executor } from '@/db/client';
import { PreparedSql } from '@/db/prepared';
import { blobs, files, packages, storageLocations } from '@/db/schema';
import { NotFoundError, PayloadTooLargeError, ValidationError } from '../errors';
import { createDigestTransform } from '../digest';
import { objectKeyForBlake3, type Backend } from '../storage/backend';
import { copiesNewBlobs, replicateNewBlob } from '../integrity/replicas';
import { countUploadBytes, trackUploadInProgress } from '../metrics/uploads';
import type { UploadProtocol } from '../metrics/registry';
import { ADVANCE_EVENT_HEAD, appendEventAt, type EventHead } from './events';
import { recordFileInBatch } from './file-batches';
import { assertOpen, getPackageRow, parsePackageId } from './packages';
import { assertNoObstacles, getPackageWithPathObstacles, obstaclesOf, pathCheckValues, pathObstacleColumns, pathTakenError, type ObstacleRow } from './path-checks';
import { normalizeRelativePath } from './relative-path';

/** The file id schema, built once rather than on every request. */
const FILE_ID = z.uuid();

export const DEFAULT_MEDIA_TYPE = 'application/octet-stream';

// RFC 6838 type/subtype names, with optional parameters; no CR, LF or other controls.
const MEDIA_TYPE_PATTERN = /^[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}\/[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}(?:\s*;\s*[A-Za-z0-9!#$&^_.+-]+=(?:[A-Za-z0-9!#$&^_.+-]+|"[^"\\\u0000-\u001f]*"))*$/;

/** Checks a media type such as `text/plain; charset=utf-8`; an absent one becomes application/octet-stream. */
export function normalizeMediaType(input: string | null | undefined, field = 'media_type'): string {
  if (input === null || input === undefined || input.trim() === '') return DEFAULT_MEDIA_TYPE;
  const value = input.trim();
  if (value.length > 255 || !MEDIA_TYPE_PATTERN.test(value)) {
    throw new ValidationError(`Invalid ${field} ${JSON.stringify(input)}: expected "type/subtype" as RFC 6838 defines it.`, [
      { field, rule: 'media_type', message: 'must be "type/subtype" with optional "; name=value" parameters' },
    ]);
  }
  return value;
}

/** One stored copy of a file's content. */
export const FileStorageLocation = z.object({
  backend_id: z.string(),
  object_key: z.string(),
  retrieval_tier: z.string(),
  status: z.enum(['ok', 'corrupt', 'missing']),
});

/** A file as the API returns it. */
export const FileRecord = z.object({
  id: z.uuid(),
  package_id: z.uuid(),
  relative_path: z.string(),
  media_type: z.string(),
  size_bytes: z.number().int().min(0),
  digest_algorithm: z.string(),
  digest_primary_hex: z.string().regex(/^[0-9a-f]{64}$/),
  digest_sha256_hex: z.string().regex(/^[0-9a-f]{64}$/),
  content_address: z.string().regex(/^blake3:[0-9a-f]{64}$/),
  created_at: z.iso.datetime(),
  storage: z.array(FileStorageLocation),
});
export type FileRecord = z.infer<typeof FileRecord>;

/** One page of a package's files, in UTF-8 byte order of their paths. */
export const FilePage = z.object({ files: z.array(FileRecord), next_cursor: z.string().nullable() });
export type FilePage = z.infer<typeof FilePage>;

type FileRow = typeof files.$inferSelect;
type LocationRow = typeof storageLocations.$inferSelect;

function toFileRecord(row: FileRow, locations: Pick<LocationRow, 'backendId' | 'objectKey' | 'retrievalTier' | 'status'>[]): FileRecord {
  return {
    id: row.id,
    package_id: row.packageId,
    relative_path: row.relativePath,
    media_type: row.mediaType,
    size_bytes: row.sizeBytes,
    digest_algorithm: row.digestAlgorithm,
    digest_primary_hex: row.digestPrimaryHex,
    digest_sha256_hex: row.digestSha256Hex,
    content_address: row.contentAddress,
    created_at: row.createdAt.toISOString(),
    storage: locations.map((location) => ({
      backend_id: location.backendId,
      object_key: location.objectKey,
      retrieval_tier: location.retrievalTier,
      status: location.status,
    })),
  };
}

export interface StoredContent {
  blake3Hex: string;
  sha256Hex: string;
  sizeBytes: number;
}

export interface RecordFileInput {
  packageId: string;
  relativePath: string;
  mediaType: string;
  content: StoredContent;
  backend: Backend;
  actor: string;
  /**
   * Moves the bytes to their object key; called under the blob's lock, inside the transaction. In a batch,
   * a failed statement can release that lock before the placement ends (see file-batches.ts).
   */
  placeBlob: (objectKey: string) => Promise<unknown>;
  /** Extra fields for the `file.added` event (the tus upload id, for example). */
  eventDetails?: Record<string, unknown>;
  /**
   * Runs inside the transaction, with the id the file will have, before the file row and its event are
   * written (the tus hand-off marks its upload done here).
   */
  beforeInsert?: (tx: Executor, fileId: string) => Promise<void>;
}

/**
 * Records bytes that are already on disk as a file of an open package, in one transaction with its
 * `file.added` event. One statement locks the package row (shared, so uploads run in parallel but not
 * past a finalize) and checks that the path is free. The same statement takes the path's advisory locks
 * and one on the content address, which the retention sweep takes before removing a blob. Then the blob
 * is placed and copied to each write replica. A last statement checks the path again, inserts the blob,
 * location (one per copy) and file rows, and takes the event's sequence number. That is three round trips
 * besides BEGIN and COMMIT (more with write replicas or a tus hand-off), which matters for small files.
 * Throws 409 when the package is no longer open or the path is taken.
 */
export async function recordFile(db: Database, input: RecordFileInput): Promise<FileRecord> {
  const contentAddress = `blake3:${input.content.blake3Hex}`;
  const objectKey = objectKeyForBlake3(input.content.blake3Hex);
  const fileId = crypto.randomUUID();
  const createdAt = new Date();
  const ownUploadId = input.eventDetails?.upload_id as string | undefined;

  try {
    return await db.transaction(async (tx) => {
      const { pkg, obstacles } = await getPackageWithPathObstacles(tx, {
        packageId: input.packageId,
        relativePath: input.relativePath,
        ownUploadId,
        lock: true,
        lockBlobOf: contentAddress,
      });
      assertOpen(pkg, 'adding files');
      assertNoObstacles(pkg.id, input.relativePath, obstacles);

      await input.placeBlob(objectKey);
      await replicateNewBlob(tx, input.backend, objectKey, contentAddress, input.content);
      await input.beforeInsert?.(tx, fileId);
      const row: FileRow = {
        id: fileId,
        packageId: pkg.id,
        relativePath: input.relativePath,
        mediaType: input.mediaType,
        sizeBytes: input.content.sizeBytes,
        digestAlgorithm: 'blake3',
        digestPrimaryHex: input.content.blake3Hex,
        digestSha256Hex: input.content.sha256Hex,
        contentAddress,
        createdAt,
      };
      // From here to COMMIT this transaction has the event log's head row locked, so nothing slow runs after it.
      const { locations, head } = await insertFileRows(tx, row, input.backend, input.content.sha256Hex, ownUploadId);

      // The package row is only share-locked here, so last_event_sequence is not updated: writing it would
      // need the row exclusively while other uploads hold it shared and wait for the event head (a
      // deadlock). Reads derive the value from the events table instead.
      await appendEventAt(tx, head, {
        eventType: 'file.added',
        subjectKind: 'package',
        subjectId: pkg.id,
        actor: input.actor,
        payload: {
          package_id: pkg.id,
          file_id: fileId,
          relative_path: input.relativePath,
          media_type: input.mediaType,
          size_bytes: input.content.sizeBytes,
          blake3_hex: input.content.blake3Hex,
          sha256_hex: input.content.sha256Hex,
          ...input.eventDetails,
        },
      });
      return toFileRecord(row, locations);
    });
  } catch (error) {
    if (isUniqueViolation(error)) throw pathTakenError(input.packageId, input.relativePath);
    throw error;
  }
}

type StoredLocation = Pick<LocationRow, 'backendId' | 'objectKey' | 'retrievalTier' | 'status'>;

const insertFileRowsStatement = new PreparedSql('insert_file_rows', () => {
  const contentAddress = sql.placeholder('content_address');
  const createdAt = sql`${sql.placeholder('created_at')}::timestamptz`;
  const packageId = sql`${sql.placeholder('package_id')}::uuid`;
  return sql`
    WITH obstacles AS (
      SELECT ${pathObstacleColumns(packageId)}
    ), new_blob AS (
      INSERT INTO ${blobs} (content_address, size_bytes, sha256_hex, created_at)
      VALUES (${contentAddress}, ${sql.placeholder('size_bytes')}, ${sql.placeholder('sha256_hex')}, ${createdAt})
      ON CONFLICT DO NOTHING
    ), new_location AS (
      INSERT INTO ${storageLocations} (content_address, backend_id, object_key, retrieval_tier, status, verified_at, created_at)
      VALUES (${contentAddress}, ${sql.placeholder('backend_id')}, ${sql.placeholder('object_key')}, ${sql.placeholder('retrieval_tier')}, 'ok',
              ${createdAt}, ${createdAt})
      ON CONFLICT DO NOTHING
      RETURNING backend_id, object_key, retrieval_tier, status
    ), new_file AS (
      INSERT INTO ${files} (id, package_id, relative_path, media_type, size_bytes, digest_algorithm, digest_primary_hex,
                            digest_sha256_hex, content_address, created_at)
      SELECT ${sql.placeholder('id')}, ${packageId}, ${sql.placeholder('relative_path')}, ${sql.placeholder('media_type')},
             ${sql.placeholder('size_bytes')}, ${sql.placeholder('digest_algorithm')}, ${sql.placeholder('digest_primary_hex')},
             ${sql.placeholder('sha256_hex')}, ${contentAddress}, ${createdAt}
      FROM obstacles
      WHERE existing_file_id IS NULL AND clashing_path IS NULL AND pending_upload_id IS NULL AND clashing_upload_path IS NULL
      RETURNING id
    ), head AS (${ADVANCE_EVENT_HEAD}
    ), locations AS (
      SELECT backend_id, object_key, retrieval_tier, status FROM new_location
      UNION ALL
      SELECT backend_id, object_key, retrieval_tier, status FROM ${storageLocations} WHERE content_address = ${contentAddress}
    )
    SELECT head.sequence, head.previous_chain_digest_hex, obstacles.*, (SELECT count(*) FROM new_file) AS files_inserted, locations.*
    FROM head CROSS JOIN obstacles LEFT JOIN locations ON true`;
});

/**
 * Inserts the blob (unless stored already), its location on `backend` (unless present) and the file row
 * in one statement that also advances the event log's head, and returns every location of the blob and
 * the head for appendEventAt. The statement's own inserts are invisible to its SELECT, so the new
 * location comes from the INSERT's RETURNING and the older ones (copies written earlier in the
 * transaction too) from the table.
 *
 * The statement checks the path's obstacles again, in a snapshot taken after the path locks were acquired
 * (see getPackageWithPathObstacles). It inserts no file row when an obstacle appeared, which is a file or
 * an unfinished upload that a concurrent transaction committed just before this one acquired the locks.
 * This function then throws 409, and the caller's transaction rolls back the rest. The unique index on
 * the package and path stays the last guard, and recordFile turns a violation of it (23505) into 409 too.
 */
async function insertFileRows(tx: Executor, row: FileRow, backend: Backend, sha256Hex: string, ownUploadId: string | undefined): Promise<{ locations: StoredLocation[]; head: EventHead }> {
  const result = await insertFileRowsStatement.execute(tx, {
    ...pathCheckValues(row.relativePath, ownUploadId),
    content_address: row.contentAddress,
    created_at: row.createdAt.toISOString(),
    size_bytes: row.sizeBytes,
    sha256_hex: sha256Hex,
    backend_id: backend.id,
    object_key: objectKeyForBlake3(row.digestPrimaryHex),
    retrieval_tier: backend.retrievalTier,
    id: row.id,
    package_id: row.packageId,
    media_type: row.mediaType,
    digest_algorithm: row.digestAlgorithm,
    digest_primary_hex: row.digestPrimaryHex,
  });
  type Row = EventHead &
    ObstacleRow & { files_inserted: string | number; backend_id: string | null; object_key: string; retrieval_tier: string; status: LocationRow['status'] };
  const rows = rowsOf<Row>(result);
  if (Number(rows[0].files_inserted) !== 1) {
    assertNoObstacles(row.packageId, row.relativePath, obstaclesOf(rows[0]));
    throw new Error(`The file row for "${row.relativePath}" in package ${row.packageId} was not inserted, and no obstacle was found.`);
  }
  return {
    head: rows[0],
    locations: rows
      .filter((location) => location.backend_id !== null)
      .map((location) => ({
        backendId: location.backend_id!,
        objectKey: location.object_key,
        retrievalTier: location.retrieval_tier,
        status: location.status,
      })),
  };
}

const lockBlobStatement = new PreparedSql('lock_blob', () => sql`SELECT pg_advisory_xact_lock(hashtextextended(${sql.placeholder('content_address')}, 0))`);

/** Takes the transaction-scoped advisory lock that serializes placing and removing one blob. */
export async function lockBlob(tx: Executor, contentAddress: string): Promise<void> {
  await lockBlobStatement.execute(tx, { content_address: contentAddress });
}

const lockBlobsStatement = new PreparedSql(
  'lock_blobs',
  () => sql`SELECT count(pg_advisory_xact_lock(lock_key)) AS taken
    FROM (SELECT DISTINCT hashtextextended(address, 0) AS lock_key FROM unnest(${sql.placeholder('content_addresses')}::text[]) AS address
          ORDER BY lock_key) AS keys`,
);

/**
 * Takes the locks of several blobs (see lockBlob) in the order of their keys, the order in which a batch
 * of files takes them, so two transactions that lock several blobs cannot wait for each other in a cycle.
 */
export async function lockBlobs(tx: Executor, contentAddresses: string[]): Promise<void> {
  await lockBlobsStatement.execute(tx, { content_addresses: contentAddresses });
}

export interface AddFileInput {
  packageId: string;
  relativePath: string;
  mediaType: string | null | undefined;
  body: Readable;
  actor: string;
  maxBytes: number;
  /** The declared length, when the client sent one; checked against the limit before any byte is read. */
  declaredLength?: number;
  /** Transport of the bytes, a label of the upload metrics. */
  protocol: UploadProtocol;
  /**
   * Settles when the rest of the request is known to be valid (a multipart body after its file part).
   * The file is recorded only once it resolves, so a request that fails after its file's bytes records nothing.
   */
  requestComplete?: Promise<void>;
}

/** Files up to this size are recorded together with the other files that arrive at once (see file-batches.ts). */
const BATCHED_FILE_MAX_BYTES = 1024 * 1024;

/** Declared body sizes from which a raw PUT checks its package and path before reading the body. */
const PATH_CHECK_BEFORE_BODY_BYTES = 64 * 1024;

/**
 * Streams one file into the blob store while computing both digests, then records it. Nothing is kept
 * when the request fails: an unfinished write is discarded, and a placed blob that no row references is
 * removed by the orphan sweep.
 */
export async function addFileFromStream(db: Database, backend: Backend, input: AddFileInput): Promise<FileRecord> {
  const relativePath = normalizeRelativePath(input.relativePath);
  const mediaType = normalizeMediaType(input.mediaType);
  if (input.declaredLength !== undefined && input.declaredLength > input.maxBytes) {
    throw new PayloadTooLargeError(`The file is ${input.declaredLength} bytes; the limit is ${input.maxBytes}.`, { limit_bytes: input.maxBytes });
  }
  // The package and path are checked before the body is read, so a rejected upload does not send its
  // bytes for nothing. A body declared smaller than PATH_CHECK_BEFORE_BODY_BYTES skips this round trip:
  // the same checks run again inside the transaction that records the file and reject the same requests.
  if (input.declaredLength === undefined || input.declaredLength >= PATH_CHECK_BEFORE_BODY_BYTES) {
    const { pkg, obstacles } = await getPackageWithPathObstacles(db, { packageId: input.packageId, relativePath, lock: false });
    assertOpen(pkg, 'adding files');
    assertNoObstacles(pkg.id, relativePath, obstacles);
  }

  const writer = await backend.createWriter();
  const finishTracking = trackUploadInProgress(input.protocol);
  let placed = false;
  try {
    const digest = createDigestTransform({ maxBytes: input.maxBytes });
    await pipeline(input.body, countUploadBytes(input.protocol), digest, writer.stream);
    await input.requestComplete;
    const content = digest.result();
    const recording = {
      packageId: input.packageId,
      relativePath,
      mediaType,
      content,
      backend,
      actor: input.actor,
      placeBlob: async (objectKey: string) => {
        placed = true;
        return writer.commit(objectKey);
      },
    };
    // A large file's commit (a server-side copy on S3) would hold up the small files of its batch, and a replica copy even more.
    return content.sizeBytes <= BATCHED_FILE_MAX_BYTES && !copiesNewBlobs() ? await recordFileInBatch(db, recording) : await recordFile(db, recording);
  } finally {
    finishTracking();
    if (!placed) await writer.cancel();
  }
}

export async function getFile(db: Executor, id: string): Promise<FileRecord & { package_status: string }> {
  const fileId = FILE_ID.safeParse(id);
  if (!fileId.success) throw new NotFoundError('File', id);
  const rows = await db
    .select({ file: files, packageStatus: packages.status })
    .from(files)
    .innerJoin(packages, eq(files.packageId, packages.id))
    .where(eq(files.id, fileId.data.toLowerCase()));
  if (rows.length === 0) throw new NotFoundError('File', id);
  const locations = await db.select().from(storageLocations).where(eq(storageLocations.contentAddress, rows[0].file.contentAddress));
  return { ...toFileRecord(rows[0].file, locations), package_status: rows[0].packageStatus };
}

export const ListFilesQuery = z
  .object({
    limit: queryInteger(1, 1000, 100),
    cursor: z.string().max(2048).optional(),
  })
  .strict();

/** Lists a package's files in UTF-8 byte order of their paths, with keyset pagination on the path. */
export async function listFiles(db: Executor, packageId: string, query: z.infer<typeof ListFilesQuery>): Promise<FilePage> {
  const pkg = await getPackageRow(db, packageId);
  let after: string | undefined;
  if (query.cursor !== undefined) {
    after = Buffer.from(query.cursor, 'base64url').toString('utf8');
    if (Buffer.from(after, 'utf8').toString('base64url') !== query.cursor) {
      throw new ValidationError('The cursor is invalid; pass the next_cursor value of a previous page unchanged.', [
        { field: 'cursor', rule: 'cursor', message: 'not a cursor returned by this endpoint' },
      ]);
    }
  }
  const rows = await db
    .select()
    .from(files)
    .where(and(eq(files.packageId, pkg.id), after === undefined ? undefined : gt(sql`${files.relativePath} COLLATE "C"`, after)))
    .orderBy(asc(sql`${files.relativePath} COLLATE "C"`))
    .limit(query.limit + 1);
  const page = rows.slice(0, query.limit);
  const addresses = [...new Set(page.map((row) => row.contentAddress))];
  const locations = addresses.length
    ? await db.select().from(storageLocations).where(inArray(storageLocations.contentAddress, addresses))
    : [];
  return {
    files: page.map((row) => toFileRecord(row, locations.filter((location) => location.contentAddress === row.contentAddress))),
    next_cursor: rows.length > query.limit ? Buffer.from(page[page.length - 1].relativePath, 'utf8').toString('base64url') : null,
  };
}

export { parsePackageId };
