/**
 * Fixity scrub: re-reads stored copies of blobs, recomputes both digests, records each copy's
 * `verified_at` and `status` (`ok`, `corrupt`, `missing`) and rewrites a failed copy from a good one.
 */
import { and, asc, eq, gt, ne, sql } from 'drizzle-orm';
import type { Logger } from 'pino';
import { rowsOf, type Database, type DatabaseConnection } from '@/db/client';
import { blobs, files, storageLocations } from '@/db/schema';
import { digestStream } from '../digest';
import { getMetrics } from '../metrics/registry';
import { appendEvent } from '../registry/events';
import { lockBlob } from '../registry/files';
import { getPackageRow } from '../registry/packages';
import type { Backend } from '../storage/backend';
import { recordLocationFailure, recordLocationVerified, type LocationFailure, type LocationRef } from './location-status';
import { ReadRateLimiter } from './rate-limiter';
import { copyObject, CopyMismatchError, type ExpectedContent } from './replicas';
import { z } from 'zod';

const PAGE_SIZE = 200;
// First key of the two-key advisory lock that a scrub holds on a blob while it checks and repairs it.
// Upload locks use another first key, and blob locks the one-key space, which never overlaps this one.
const SCRUB_LOCK_CLASS = 0x7363_7200;

/** Read rates of a scrub in bytes per second, for checks and repairs together. */
export interface ScrubRates {
  rateBytesPerSecond: number;
  /** The rate while `isBusy` returns true; `rateBytesPerSecond` when absent. */
  busyRateBytesPerSecond?: number;
  isBusy?: () => boolean;
}

export interface ScrubContext extends ScrubRates {
  db: Database;
  /** Provides the advisory locks through which scrubs in several processes split the blobs between them. */
  connection: Pick<DatabaseConnection, 'tryAdvisoryLock'>;
  backends: Map<string, Backend>;
  log: Logger;
  /**
   * The backends that hold the copies of new blobs, in write order (the primary first), and how many
   * copies each blob should have. When given, a blob with fewer location rows gets new copies on the
   * first of these backends that lack one, which is how a backend added to the configuration is filled.
   */
  copyPlan?: { backends: Backend[]; copies: number };
}

export interface ScrubOptions {
  /** Checks only the blobs of this package (its files and manifests); every stored blob otherwise. */
  packageId?: string;
  actor: string;
  signal?: AbortSignal;
  /**
   * Counts a copy as checked already when its verified_at is within this many seconds before the run
   * starts, so scheduled runs of several instances check each copy once per period. Without it, only
   * copies checked or written after the run started are left alone.
   */
  skipVerifiedWithinSeconds?: number;
}

export const LocationFinding = z.object({
  content_address: z.string(),
  backend_id: z.string(),
  object_key: z.string(),
  detail: z.string(),
});
export type LocationFinding = z.infer<typeof LocationFinding>;

export const ScrubReport = z.object({
  started_at: z.iso.datetime(),
  finished_at: z.iso.datetime(),
  package_id: z.string().nullable(),
  checked: z.number().int().min(0),
  blobs_already_verified: z
    .number()
    .int()
    .min(0)
    .meta({
      description:
        'Blobs this run did not read, because another scrub held them or every copy was checked or written after this run started (for scheduled runs: within SCRUB_INTERVAL_SECONDS).',
    }),
  bytes_read: z.number().int().min(0),
  ok: z.number().int().min(0),
  corrupt: z.array(LocationFinding),
  missing: z.array(LocationFinding),
  repaired: z.array(LocationFinding),
  repair_failed: z.array(LocationFinding),
  added: z
    .array(LocationFinding)
    .meta({ description: 'New copies written because the blob had fewer copies than configured, for example after a backend was added.' }),
  skipped: z
    .array(LocationFinding)
    .meta({ description: 'Copies on a backend this process has not configured, or whose storage failed while reading.' }),
});
export type ScrubReport = z.infer<typeof ScrubReport>;

/** POST /scrub body; an absent body scrubs every stored blob. */
export const ScrubRequest = z.object({ package_id: z.string().min(1).max(64).optional() }).strict();

type LocationRow = typeof storageLocations.$inferSelect;
type CheckResult = { status: 'ok' } | { status: LocationFailure; detail: string };

/**
 * Checks every stored copy (or those of one package), one blob at a time and at most
 * `rateBytesPerSecond`. Scrubs running at the same time, in one process or several, split the blobs
 * between them. Each blob is checked under an advisory lock, and the other runs skip a locked blob
 * instead of waiting for it. Under the lock, a copy whose verified_at is at or after this run's start
 * (by the database clock, less `skipVerifiedWithinSeconds`) counts as checked already. A copy that fails is marked `corrupt` or `missing` with a
 * `storage.location_failed` event. Afterwards each failed copy of the blob is rewritten from a copy that
 * just passed, verified, marked `ok` and recorded as a `storage.location_repaired` event. Throws
 * NotFoundError for an unknown package; storage errors on one copy are logged and reported as skipped.
 */
export async function scrubStorage(context: ScrubContext, options: ScrubOptions): Promise<ScrubReport> {
  const limiter = new ReadRateLimiter(context.rateBytesPerSecond, { busyBytesPerSecond: context.busyRateBytesPerSecond, isBusy: context.isBusy });
  const report: ScrubReport = {
    started_at: new Date().toISOString(),
    finished_at: '',
    package_id: options.packageId ?? null,
    checked: 0,
    blobs_already_verified: 0,
    bytes_read: 0,
    ok: 0,
    corrupt: [],
    missing: [],
    repaired: [],
    repair_failed: [],
    added: [],
    skipped: [],
  };

  const verifiedSince = new Date((await databaseNow(context.db)).getTime() - (options.skipVerifiedWithinSeconds ?? 0) * 1000);
  for await (const contentAddress of contentAddressesToCheck(context.db, options.packageId)) {
    options.signal?.throwIfAborted();
    const release = await context.connection.tryAdvisoryLock(SCRUB_LOCK_CLASS, contentAddress);
    if (!release) {
      report.blobs_already_verified += 1;
      continue;
    }
    try {
      await scrubBlob(context, options, contentAddress, verifiedSince, limiter, report);
    } finally {
      await release();
    }
  }
  report.finished_at = new Date().toISOString();
  return report;
}

/** Returns the database server's current time, the clock that verified_at is written with. */
async function databaseNow(db: Database): Promise<Date> {
  const [row] = rowsOf<{ ms: number | string }>(await db.execute(sql`SELECT extract(epoch FROM now()) * 1000 AS ms`));
  return new Date(Number(row.ms));
}

/** Yields the content addresses to check, a page at a time, in content address order. */
async function* contentAddressesToCheck(db: Database, packageId: string | undefined): AsyncGenerator<string> {
  if (packageId !== undefined) {
    const pkg = await getPackageRow(db, packageId);
    const rows = await db.selectDistinct({ address: files.contentAddress }).from(files).where(eq(files.packageId, pkg.id));
    const addresses = new Set(rows.map((row) => row.address));
    if (pkg.manifestCborAddress) addresses.add(pkg.manifestCborAddress);
    if (pkg.manifestJsonAddress) addresses.add(pkg.manifestJsonAddress);
    yield* [...addresses].sort();
    return;
  }

  let after = '';
  for (;;) {
    const rows = await db
      .selectDistinct({ address: storageLocations.contentAddress })
      .from(storageLocations)
      .where(gt(storageLocations.contentAddress, after))
      .orderBy(asc(storageLocations.contentAddress))
      .limit(PAGE_SIZE);
    for (const row of rows) yield row.address;
    if (rows.length < PAGE_SIZE) return;
    after = rows[rows.length - 1].address;
  }
}

function expectedContentOf(blob: typeof blobs.$inferSelect): ExpectedContent {
  return { blake3Hex: blob.contentAddress.slice('blake3:'.length), sha256Hex: blob.sha256Hex, sizeBytes: blob.sizeBytes };
}

function refOf(location: LocationRow): LocationRef {
  return { contentAddress: location.contentAddress, backendId: location.backendId, objectKey: location.objectKey };
}

function findingOf(location: LocationRow, detail: string): LocationFinding {
  return { content_address: location.contentAddress, backend_id: location.backendId, object_key: location.objectKey, detail };
}

/**
 * Checks the copies of one blob that were not checked or written since `verifiedSince`, then repairs
 * those that failed. A copy checked since then is not read again: it serves as a repair source when it
 * is ok, and is left to the run that checked it otherwise.
 */
async function scrubBlob(
  context: ScrubContext,
  options: ScrubOptions,
  contentAddress: string,
  verifiedSince: Date,
  limiter: ReadRateLimiter,
  report: ScrubReport,
): Promise<void> {
  const { db, backends, log } = context;
  const [blob] = await db.select().from(blobs).where(eq(blobs.contentAddress, contentAddress));
  if (!blob) return;
  const expected = expectedContentOf(blob);
  const locations = await db.select().from(storageLocations).where(eq(storageLocations.contentAddress, contentAddress)).orderBy(asc(storageLocations.backendId));
  const isRecent = (location: LocationRow) => location.verifiedAt !== null && location.verifiedAt.getTime() >= verifiedSince.getTime();
  if (locations.length > 0 && locations.every(isRecent)) {
    report.blobs_already_verified += 1;
    return;
  }

  const good: LocationRow[] = locations.filter((location) => isRecent(location) && location.status === 'ok');
  const failed: LocationRow[] = [];
  for (const location of locations.filter((candidate) => !isRecent(candidate))) {
    const backend = backends.get(location.backendId);
    if (!backend) {
      report.skipped.push(findingOf(location, `backend ${location.backendId} is not configured in this process.`));
      continue;
    }

    let result: CheckResult;
    try {
      result = await checkCopy(backend, location.objectKey, expected, limiter, report);
    } catch (error) {
      log.error({ err: error, content_address: contentAddress, backend_id: location.backendId }, 'scrub could not read a stored copy; it is left unchanged');
      report.skipped.push(findingOf(location, `reading failed: ${(error as Error).message}`));
      continue;
    }
    report.checked += 1;
    getMetrics().scrubCopiesChecked.inc();

    if (result.status === 'ok') {
      report.ok += 1;
      if (location.status === 'ok') {
        await recordLocationVerified(db, refOf(location));
        good.push(location);
      } else {
        // A copy that was failed but now passes (restored by an operator) is restored to ok as a repair.
        if (await recordRepair(db, location, 'the copy passed its check again', null, options.actor)) {
          report.repaired.push(findingOf(location, 'the copy passed its check again'));
          getMetrics().scrubRepairs.inc({ result: 'repaired' });
        }
        good.push(location);
      }
      continue;
    }

    log.warn({ content_address: contentAddress, backend_id: location.backendId, status: result.status, detail: result.detail }, 'scrub found a failed stored copy');
    // The copy is checked again under the blob's lock, because a repair by another scrub may have been
    // replacing it while it was read.
    const confirm = async () => (await checkCopy(backend, location.objectKey, expected, limiter, report)).status !== 'ok';
    try {
      if (await recordLocationFailure(db, refOf(location), result.status, result.detail, options.actor, confirm)) {
        report[result.status].push(findingOf(location, result.detail));
        getMetrics().scrubFailures.inc({ status: result.status });
        failed.push(location);
      }
    } catch (error) {
      log.error({ err: error, content_address: contentAddress, backend_id: location.backendId }, 'scrub could not record a failed stored copy; it is left unchanged');
      report.skipped.push(findingOf(location, `recording the failure failed: ${(error as Error).message}`));
    }
  }

  for (const location of failed) {
    await repairCopy(context, options, location, good, expected, limiter, report);
  }
  await addMissingCopies(context, options, contentAddress, locations, good, expected, limiter, report);
}

/**
 * Writes new copies of a blob that has fewer location rows than the configured number of copies, on the
 * first backends of the write order that hold none, streamed and verified from a copy that just passed
 * its check. Each new copy gets an ok location row and a `storage.location_added` event. A backend that
 * fails is reported in repair_failed and the next one is tried.
 */
async function addMissingCopies(
  context: ScrubContext,
  options: ScrubOptions,
  contentAddress: string,
  locations: LocationRow[],
  good: LocationRow[],
  expected: ExpectedContent,
  limiter: ReadRateLimiter,
  report: ScrubReport,
): Promise<void> {
  const plan = context.copyPlan;
  if (!plan || good.length === 0) return;
  // Rows of a backend removed from the configuration do not count: their copies can no longer be read.
  const holders = new Set(locations.map((location) => location.backendId).filter((backendId) => context.backends.has(backendId)));
  const sourceLocation = good[0];
  const source = context.backends.get(sourceLocation.backendId)!;

  for (const target of plan.backends) {
    if (holders.size >= plan.copies) return;
    if (holders.has(target.id)) continue;
    const finding = { content_address: contentAddress, backend_id: target.id, object_key: sourceLocation.objectKey };
    try {
      const writer = await copyAtScrubRate(source, target, sourceLocation.objectKey, expected, limiter, report);
      const detail = `copied from ${source.id}`;
      const added = await context.db.transaction(async (tx) => {
        await lockBlob(tx, contentAddress);
        // Retention may have removed the blob, or another scrub added this copy, while the bytes moved.
        const [blob] = await tx.select({ contentAddress: blobs.contentAddress }).from(blobs).where(eq(blobs.contentAddress, contentAddress));
        const [existing] = await tx
          .select({ backendId: storageLocations.backendId })
          .from(storageLocations)
          .where(and(eq(storageLocations.contentAddress, contentAddress), eq(storageLocations.backendId, target.id)));
        if (!blob || existing) {
          await writer.cancel();
          return false;
        }
        await writer.commit(sourceLocation.objectKey);
        const now = new Date();
        await tx.insert(storageLocations).values({
          contentAddress,
          backendId: target.id,
          objectKey: sourceLocation.objectKey,
          retrievalTier: target.retrievalTier,
          status: 'ok',
          verifiedAt: now,
          createdAt: now,
        });
        await appendEvent(tx, {
          eventType: 'storage.location_added',
          subjectKind: 'blob',
          subjectId: contentAddress,
          actor: options.actor,
          payload: { content_address: contentAddress, backend_id: target.id, object_key: sourceLocation.objectKey, source_backend_id: source.id, detail },
        });
        return true;
      });
      holders.add(target.id);
      if (added) {
        context.log.info({ content_address: contentAddress, backend_id: target.id, source_backend_id: source.id }, 'scrub added a missing copy');
        report.added.push({ ...finding, detail });
      }
    } catch (error) {
      context.log.error({ err: error, content_address: contentAddress, backend_id: target.id }, 'scrub failed to add a copy; trying the next backend');
      report.repair_failed.push({ ...finding, detail: `adding a copy failed: ${(error as Error).message}` });
      getMetrics().scrubRepairs.inc({ result: 'failed' });
    }
  }
}

/** Reads one copy at the limited rate and compares size and both digests; throws on storage errors other than a missing object. */
async function checkCopy(backend: Backend, objectKey: string, expected: ExpectedContent, limiter: ReadRateLimiter, report: ScrubReport): Promise<CheckResult> {
  // stat, not `instanceof BlobNotFoundError` on a read error: the backend may come from another Next.js
  // bundle whose error classes are different objects.
  if ((await backend.stat(objectKey)) === null) return { status: 'missing', detail: `object ${objectKey} does not exist on ${backend.id}.` };
  const stream = await backend.read(objectKey);

  const throttled = async function* () {
    for await (const chunk of stream as AsyncIterable<Buffer>) {
      report.bytes_read += chunk.byteLength;
      getMetrics().scrubBytesRead.inc(chunk.byteLength);
      await limiter.consume(chunk.byteLength);
      yield chunk;
    }
  };
  const actual = await digestStream(throttled());
  if (actual.sizeBytes !== expected.sizeBytes) {
    return { status: 'corrupt', detail: `read ${actual.sizeBytes} bytes, expected ${expected.sizeBytes}.` };
  }
  if (actual.blake3Hex !== expected.blake3Hex) {
    return { status: 'corrupt', detail: `BLAKE3 is ${actual.blake3Hex}, expected ${expected.blake3Hex}.` };
  }
  if (actual.sha256Hex !== expected.sha256Hex) {
    return { status: 'corrupt', detail: `SHA-256 is ${actual.sha256Hex}, expected ${expected.sha256Hex}.` };
  }
  return { status: 'ok' };
}

/** Streams a verified copy into an uncommitted writer on `target`, counting the bytes read against the scrub's rate. */
function copyAtScrubRate(source: Backend, target: Backend, objectKey: string, expected: ExpectedContent, limiter: ReadRateLimiter, report: ScrubReport) {
  return copyObject(source, target, objectKey, expected, (bytes) => {
    report.bytes_read += bytes;
    getMetrics().scrubBytesRead.inc(bytes);
    return limiter.consume(bytes);
  });
}

/**
 * Rewrites a failed copy from the first good copy. The good bytes are streamed and verified into a
 * temporary file on the failed copy's backend. Then, under the blob's lock, the failed object is removed,
 * the new one placed and read back to verify it, and the location is marked ok with a
 * `storage.location_repaired` event.
 */
async function repairCopy(
  context: ScrubContext,
  options: ScrubOptions,
  location: LocationRow,
  good: LocationRow[],
  expected: ExpectedContent,
  limiter: ReadRateLimiter,
  report: ScrubReport,
): Promise<void> {
  const { db, backends, log } = context;
  const target = backends.get(location.backendId)!;
  const sourceLocation = good.find((candidate) => candidate.backendId !== location.backendId);
  if (!sourceLocation) {
    report.repair_failed.push(findingOf(location, 'no good copy of the blob is available to repair from.'));
    getMetrics().scrubRepairs.inc({ result: 'failed' });
    return;
  }
  const source = backends.get(sourceLocation.backendId)!;

  try {
    const writer = await copyAtScrubRate(source, target, sourceLocation.objectKey, expected, limiter, report);
    const detail = `rewritten from ${source.id}`;
    const repaired = await db.transaction(async (tx) => {
      await lockBlob(tx, location.contentAddress);
      const where = and(eq(storageLocations.contentAddress, location.contentAddress), eq(storageLocations.backendId, location.backendId), ne(storageLocations.status, 'ok'));
      const [row] = await tx.select().from(storageLocations).where(where);
      if (!row) {
        await writer.cancel();
        return false;
      }

      await target.delete(location.objectKey);
      await writer.commit(location.objectKey);
      const check = await checkCopy(target, location.objectKey, expected, limiter, report);
      if (check.status !== 'ok') throw new CopyMismatchError(`The rewritten copy failed its check: ${check.status}.`);

      await tx.update(storageLocations).set({ status: 'ok', verifiedAt: sql`now()` }).where(where);
      await appendEvent(tx, {
        eventType: 'storage.location_repaired',
        subjectKind: 'blob',
        subjectId: location.contentAddress,
        actor: options.actor,
        payload: repairPayload(location, row.status, detail, source.id),
      });
      return true;
    });
    if (repaired) {
      log.info({ content_address: location.contentAddress, backend_id: location.backendId, source_backend_id: source.id }, 'scrub repaired a stored copy');
      report.repaired.push(findingOf(location, detail));
      getMetrics().scrubRepairs.inc({ result: 'repaired' });
    }
  } catch (error) {
    log.error({ err: error, content_address: location.contentAddress, backend_id: location.backendId }, 'scrub failed to repair a stored copy');
    report.repair_failed.push(findingOf(location, `repair failed: ${(error as Error).message}`));
    getMetrics().scrubRepairs.inc({ result: 'failed' });
  }
}

function repairPayload(location: LocationRow, previousStatus: string, detail: string, sourceBackendId: string | null) {
  return {
    content_address: location.contentAddress,
    backend_id: location.backendId,
    object_key: location.objectKey,
    previous_status: previousStatus,
    source_backend_id: sourceBackendId,
    detail,
  };
}

/** Marks a failed copy that passed a check again as ok, with a `storage.location_repaired` event. */
async function recordRepair(db: Database, location: LocationRow, detail: string, sourceBackendId: string | null, actor: string): Promise<boolean> {
  return db.transaction(async (tx) => {
    await lockBlob(tx, location.contentAddress);
    const where = and(eq(storageLocations.contentAddress, location.contentAddress), eq(storageLocations.backendId, location.backendId), ne(storageLocations.status, 'ok'));
    const [row] = await tx.select().from(storageLocations).where(where);
    if (!row) return false;
    await tx.update(storageLocations).set({ status: 'ok', verifiedAt: sql`now()` }).where(where);
    await appendEvent(tx, {
      eventType: 'storage.location_repaired',
      subjectKind: 'blob',
      subjectId: location.contentAddress,
      actor,
      payload: repairPayload(location, row.status, detail, sourceBackendId),
    });
    return true;
  });
}

