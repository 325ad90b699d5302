import crypto from 'node:crypto';
import { and, eq, getTableColumns, lt, or, sql, type SQL } from 'drizzle-orm';
import { z } from 'zod';
import { queryInteger } from '../http/body';
import { rowsOf, type Executor } from '@/db/client';
import { events, files, holds, packageIdempotencyKeys, packages, retentionClasses, uploads } from '@/db/schema';
import { ConflictError, NotFoundError, UnprocessableContentError, ValidationError } from '../errors';
import { assertCanonicalizable, canonicalJson } from '../encoding/jcs';
import { metadataSizeIssue } from '../http/json-limits';
import { appendEvent } from './events';
import { validateMetadata } from './metadata-schemas';

const Label = (max: number) =>
  z
    .string()
    .min(1)
    .max(max)
    .refine((value) => !/[\u0000-\u001f\u007f]/.test(value), 'control characters are not allowed')
    .refine((value) => value.isWellFormed(), 'lone UTF-16 surrogates are not allowed');

export const CreatePackage = z
  .object({
    name: Label(256),
    producer: Label(256),
    subject: Label(512),
    retention_class: z.string().min(1).max(64),
    metadata_schema: z.string().min(1).max(128).nullable().optional(),
    metadata: z.record(z.string(), z.unknown()).default({}),
  })
  .strict();
export type CreatePackage = z.infer<typeof CreatePackage>;

export const PackageStatus = z.enum(['open', 'finalized', 'deleted']);
export type PackageStatus = z.infer<typeof PackageStatus>;

/** A package as the API returns it. */
export const PackageRecord = z.object({
  id: z.uuid(),
  name: z.string(),
  producer: z.string(),
  subject: z.string(),
  retention_class: z.string(),
  metadata_schema: z.string().nullable(),
  metadata: z.record(z.string(), z.unknown()),
  status: PackageStatus,
  manifest_digest: z.string().regex(/^blake3:[0-9a-f]{64}$/).nullable(),
  created_by: z.string(),
  created_at: z.iso.datetime(),
  finalized_at: z.iso.datetime().nullable(),
  expires_at: z.iso.datetime().nullable(),
  deleted_at: z.iso.datetime().nullable(),
  last_event_sequence: z.number().int().nullable(),
});
export type PackageRecord = z.infer<typeof PackageRecord>;

/** One page of GET /packages, newest first. */
export const PackagePage = z.object({ packages: z.array(PackageRecord), next_cursor: z.string().nullable() });
export type PackagePage = z.infer<typeof PackagePage>;

type PackageRow = typeof packages.$inferSelect;

/**
 * The package columns with last_event_sequence taken from the events table: file uploads write events
 * without updating the package row, so the column alone may lag behind.
 */
const packageColumnsWithLastEvent = {
  ...getTableColumns(packages),
  lastEventSequence: sql<number | null>`coalesce((SELECT max(${events.sequence}) FROM ${events} WHERE ${events.subjectKind} = 'package' AND ${events.subjectId} = ${packages.id}::text), ${packages.lastEventSequence})`.mapWith(
    (value) => (value === null ? null : Number(value)),
  ),
};

export function toPackageRecord(row: PackageRow): PackageRecord {
  return {
    id: row.id,
    name: row.name,
    producer: row.producer,
    subject: row.subject,
    retention_class: row.retentionClass,
    metadata_schema: row.metadataSchema,
    metadata: row.metadata as Record<string, unknown>,
    status: row.status,
    manifest_digest: row.manifestDigest,
    created_by: row.createdBy,
    created_at: row.createdAt.toISOString(),
    finalized_at: row.finalizedAt?.toISOString() ?? null,
    expires_at: row.expiresAt?.toISOString() ?? null,
    deleted_at: row.deletedAt?.toISOString() ?? null,
    last_event_sequence: row.lastEventSequence,
  };
}

export const PackageId = z.uuid({ message: 'must be a UUID' });

/** Throws 404 unless the id is a UUID (an id that cannot exist is reported as unknown, not as malformed). */
export function parsePackageId(id: string): string {
  const parsed = PackageId.safeParse(id);
  if (!parsed.success) throw new NotFoundError('Package', id);
  return parsed.data.toLowerCase();
}

/**
 * Creates an open package after checking its class, schema and metadata; writes `package.created`. With
 * an idempotency key, a request that repeats an earlier one of the same actor and key returns the
 * package that the earlier one created, and one with another body throws 422. A request
 * whose key is in use by a transaction that has not yet committed throws 409.
 */
export async function createPackage(
  db: Executor,
  input: CreatePackage,
  actor: string,
  maxMetadataBytes: number,
  idempotencyKey?: string,
): Promise<PackageRecord> {
  assertCanonicalizable(input.metadata, 'metadata');
  const requestSha256Hex = crypto
    .createHash('sha256')
    .update(canonicalJson({ ...input, metadata_schema: input.metadata_schema ?? null }))
    .digest('hex');
  // A repeat returns before the checks run, so a limit or schema changed since cannot reject it.
  if (idempotencyKey !== undefined) {
    const repeated = await packageOfIdempotencyKey(db, actor, idempotencyKey, requestSha256Hex);
    if (repeated !== undefined) return repeated;
  }

  const tooLarge = metadataSizeIssue(input.metadata, maxMetadataBytes);
  if (tooLarge) throw new ValidationError(tooLarge.detail, [tooLarge.issue]);
  const classRows = await db.select().from(retentionClasses).where(eq(retentionClasses.classId, input.retention_class));
  if (classRows.length === 0) {
    const known = (await db.select({ id: retentionClasses.classId }).from(retentionClasses)).map((row) => row.id);
    throw new ValidationError(`Unknown retention class "${input.retention_class}".`, [
      { field: 'retention_class', rule: 'exists', message: `must be one of: ${known.join(', ')}` },
    ]);
  }
  if (input.metadata_schema) await validateMetadata(db, input.metadata_schema, input.metadata);

  const id = crypto.randomUUID();
  const createdAt = new Date();
  // READ COMMITTED, whatever the database's default: each statement's snapshot then includes what
  // committed before it, so the lookup after the key's lock finds a key that the lock's previous holder stored.
  return db.transaction(async (tx) => {
    if (idempotencyKey !== undefined) {
      await lockIdempotencyKey(tx, actor, idempotencyKey);
      const committedMeanwhile = await packageOfIdempotencyKey(tx, actor, idempotencyKey, requestSha256Hex);
      if (committedMeanwhile !== undefined) return committedMeanwhile;
    }
    await tx.insert(packages).values({
      id,
      name: input.name,
      producer: input.producer,
      subject: input.subject,
      retentionClass: input.retention_class,
      metadataSchema: input.metadata_schema ?? null,
      metadata: input.metadata,
      createdBy: actor,
      createdAt,
    });
    const sequence = await appendEvent(tx, {
      eventType: 'package.created',
      subjectKind: 'package',
      subjectId: id,
      actor,
      payload: {
        package_id: id,
        name: input.name,
        producer: input.producer,
        subject: input.subject,
        retention_class: input.retention_class,
        metadata_schema: input.metadata_schema ?? null,
        metadata: input.metadata,
      },
    });
    const [row] = await tx.update(packages).set({ lastEventSequence: sequence }).where(eq(packages.id, id)).returning();
    if (idempotencyKey !== undefined) {
      await tx.insert(packageIdempotencyKeys).values({ createdBy: actor, idempotencyKey, requestSha256Hex, packageId: id, createdAt });
    }
    return toPackageRecord(row);
  }, { isolationLevel: 'read committed' });
}

/**
 * Returns the package that an earlier request of the actor created with this key, as it is now, or
 * undefined when there is none. Throws 422 when that request had another body. A package deleted
 * since frees its key, so it counts as none.
 */
async function packageOfIdempotencyKey(tx: Executor, actor: string, idempotencyKey: string, requestSha256Hex: string): Promise<PackageRecord | undefined> {
  const [earlier] = await tx
    .select({ requestSha256Hex: packageIdempotencyKeys.requestSha256Hex, packageId: packageIdempotencyKeys.packageId })
    .from(packageIdempotencyKeys)
    .where(and(eq(packageIdempotencyKeys.createdBy, actor), eq(packageIdempotencyKeys.idempotencyKey, idempotencyKey)));
  if (earlier === undefined) return undefined;
  if (earlier.requestSha256Hex !== requestSha256Hex) {
    throw new UnprocessableContentError(
      `The Idempotency-Key ${JSON.stringify(idempotencyKey)} was used for package ${earlier.packageId} with another request body; send a new key for a new package.`,
      { package_id: earlier.packageId },
    );
  }
  let record: PackageRecord;
  try {
    record = await getPackage(tx, earlier.packageId);
  } catch (error) {
    // An open package deleted between the two statements takes its key row with it.
    if (error instanceof NotFoundError) return undefined;
    throw error;
  }
  // The retention sweep may have deleted the package, and its key, between the two statements.
  return record.status === 'deleted' ? undefined : record;
}

/**
 * Takes the advisory lock of an actor's idempotency key for the rest of the transaction. Throws 409
 * while another transaction has it, because the request of that transaction may still fail.
 */
async function lockIdempotencyKey(tx: Executor, actor: string, idempotencyKey: string): Promise<void> {
  const lockName = `artifact-store:idempotency-key:${actor}/${idempotencyKey}`;
  const [lock] = rowsOf<{ taken: boolean }>(await tx.execute(sql`SELECT pg_try_advisory_xact_lock(hashtextextended(${lockName}, 0)) AS taken`));
  if (!lock.taken) {
    throw new ConflictError(`A request with the Idempotency-Key ${JSON.stringify(idempotencyKey)} is still being processed; retry once it has completed.`);
  }
}

export async function getPackage(db: Executor, id: string): Promise<PackageRecord> {
  const packageId = parsePackageId(id);
  const rows = await db.select(packageColumnsWithLastEvent).from(packages).where(eq(packages.id, packageId));
  if (rows.length === 0) throw new NotFoundError('Package', id);
  return toPackageRecord(rows[0]);
}

export async function getPackageRow(db: Executor, id: string): Promise<PackageRow> {
  const packageId = parsePackageId(id);
  const rows = await db.select().from(packages).where(eq(packages.id, packageId));
  if (rows.length === 0) throw new NotFoundError('Package', id);
  return rows[0];
}

/**
 * Locks the package row for the rest of the transaction and returns it. `share` lets several file
 * uploads proceed at once while excluding finalize and delete, which take the row `update`.
 */
export async function lockPackage(tx: Executor, id: string, mode: 'share' | 'update'): Promise<PackageRow> {
  const packageId = parsePackageId(id);
  const query = tx.select().from(packages).where(eq(packages.id, packageId));
  const rows = await (mode === 'share' ? query.for('share') : query.for('update'));
  if (rows.length === 0) throw new NotFoundError('Package', id);
  return rows[0];
}

export function assertOpen(row: Pick<PackageRow, 'id' | 'status'>, action: string): void {
  if (row.status !== 'open') {
    throw new ConflictError(`Package ${row.id} is ${row.status}; ${action} is possible only while it is open.`, {
      package_id: row.id,
      package_status: row.status,
    });
  }
}

export const ListPackagesQuery = z
  .object({
    producer: z.string().min(1).max(256).optional(),
    subject: z.string().min(1).max(512).optional(),
    retention_class: z.string().min(1).max(64).optional(),
    status: PackageStatus.optional(),
    name: z.string().min(1).max(256).optional(),
    metadata_key: z.string().min(1).max(256).optional(),
    metadata_value: z.string().max(4096).optional(),
    limit: queryInteger(1, 500, 50),
    cursor: z.string().max(512).optional(),
  })
  .strict()
  .refine((query) => (query.metadata_value === undefined) || query.metadata_key !== undefined, {
    message: 'metadata_value needs metadata_key',
    path: ['metadata_value'],
  });
export type ListPackagesQuery = z.infer<typeof ListPackagesQuery>;

interface PackageCursor {
  createdAt: Date;
  id: string;
}

function encodeCursor(row: PackageRow): string {
  return Buffer.from(JSON.stringify([row.createdAt.toISOString(), row.id])).toString('base64url');
}

function decodeCursor(cursor: string): PackageCursor {
  try {
    const [createdAt, id] = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8')) as [string, string];
    const date = new Date(createdAt);
    if (Number.isNaN(date.getTime()) || !PackageId.safeParse(id).success) throw new Error('bad cursor');
    return { createdAt: date, id };
  } catch {
    throw new ValidationError('The cursor is invalid; pass the next_cursor value of a previous page unchanged.', [
      { field: 'cursor', rule: 'cursor', message: 'not a cursor returned by this endpoint' },
    ]);
  }
}

/**
 * Lists packages newest first with keyset pagination on (created_at, id). A metadata filter matches a
 * top-level key whose value equals `metadata_value` as a string, or as the JSON value it parses to
 * (so `42` matches both "42" and 42); without a value it matches packages that have the key.
 */
export async function listPackages(db: Executor, query: ListPackagesQuery): Promise<PackagePage> {
  const rows = await listPackagesQuery(db, query);
  const page = rows.slice(0, query.limit);
  return {
    packages: page.map(toPackageRecord),
    next_cursor: rows.length > query.limit ? encodeCursor(page[page.length - 1]) : null,
  };
}

/** Returns the query of one page of packages and the first package of the next, newest first. */
export function listPackagesQuery(db: Executor, query: ListPackagesQuery) {
  const conditions: SQL[] = [];
  if (query.producer !== undefined) conditions.push(eq(packages.producer, query.producer));
  if (query.subject !== undefined) conditions.push(eq(packages.subject, query.subject));
  if (query.retention_class !== undefined) conditions.push(eq(packages.retentionClass, query.retention_class));
  if (query.status !== undefined) conditions.push(eq(packages.status, query.status));
  if (query.name !== undefined) conditions.push(eq(packages.name, query.name));
  if (query.metadata_key !== undefined) conditions.push(metadataCondition(query.metadata_key, query.metadata_value));
  if (query.cursor !== undefined) {
    const cursor = decodeCursor(query.cursor);
    conditions.push(
      or(lt(packages.createdAt, cursor.createdAt), and(eq(packages.createdAt, cursor.createdAt), lt(packages.id, cursor.id)))!,
    );
  }

  return (
    db
      .select(packageColumnsWithLastEvent)
      .from(packages)
      .where(conditions.length > 0 ? and(...conditions) : undefined)
      // NULLS LAST matches the order of packages_created_idx and the per-producer and per-subject indexes
      // (drizzle creates them DESC NULLS LAST). Plain DESC means NULLS FIRST in PostgreSQL, which no index
      // serves, so every filter would sort all its matches. Both columns are NOT NULL, so the order is the same.
      .orderBy(sql`${packages.createdAt} DESC NULLS LAST`, sql`${packages.id} DESC NULLS LAST`)
      .limit(query.limit + 1)
  );
}

function metadataCondition(key: string, value: string | undefined): SQL {
  if (value === undefined) return sql`${packages.metadata} ? ${key}`;
  const asString = JSON.stringify({ [key]: value });
  let parsed: unknown;
  try {
    parsed = JSON.parse(value);
  } catch {
    parsed = undefined;
  }
  if (parsed === undefined || typeof parsed === 'string') return sql`${packages.metadata} @> ${asString}::jsonb`;
  const asJson = JSON.stringify({ [key]: parsed });
  return sql`(${packages.metadata} @> ${asString}::jsonb OR ${packages.metadata} @> ${asJson}::jsonb)`;
}

/** Deletes an open package with its files' records (the blobs stay until an orphan sweep); 409 once finalized. */
export async function deleteOpenPackage(db: Executor, id: string, actor: string): Promise<void> {
  await db.transaction(async (tx) => {
    const row = await lockPackage(tx, id, 'update');
    if (row.status !== 'open') {
      throw new ConflictError(`Package ${row.id} is ${row.status}; only open packages can be deleted. Finalized packages leave through retention.`, {
        package_id: row.id,
        package_status: row.status,
      });
    }
    const removed = await tx.delete(files).where(eq(files.packageId, row.id)).returning({ id: files.id });
    await tx.delete(uploads).where(eq(uploads.packageId, row.id));
    await tx.delete(holds).where(eq(holds.packageId, row.id));
    await tx.delete(packages).where(eq(packages.id, row.id));
    await appendEvent(tx, {
      eventType: 'package.deleted',
      subjectKind: 'package',
      subjectId: row.id,
      actor,
      payload: { package_id: row.id, status_before: 'open', file_count: removed.length },
    });
  });
}
