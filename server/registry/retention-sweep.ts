import { and, asc, count, eq, isNull, lte, notExists } from 'drizzle-orm';
import type { Database, Executor } from '@/db/client';
import { files, holds, packageIdempotencyKeys, packages, retentionClasses } from '@/db/schema';
import type { AppContext } from '../app-context';
import { getMetrics } from '../metrics/registry';
import { appendEvent } from './events';
import { BlobRemoval, OrphanRemoval, removeOrphanObjects, removeUnreferencedBlobs } from './retention-content';
import { evaluateEligibility, listActiveHolds } from './retention-state';
import { z } from 'zod';

/** The parts of the process context a sweep uses: database, storage backends, logger and settings. */
export type SweepContext = Pick<AppContext, 'db' | 'backends' | 'log' | 'settings'>;

export interface SweepOptions {
  /** Lists the eligible packages without changing anything. */
  dryRun: boolean;
  /** The time against which expiry is judged; defaults to the current time. */
  now?: Date;
  /** The name recorded as the actor of the deletion events. */
  actor: string;
}

/** A package that a sweep deleted, or would delete in a dry run. */
export const PackageDeletion = z.object({
  package_id: z.uuid(),
  retention_class: z.string(),
  deletion_strategy: z.string(),
  manifest_digest: z.string().nullable(),
  file_count: z.number().int().min(0),
  expires_at: z.iso.datetime(),
  deleted_at: z.iso.datetime().nullable().meta({ description: 'Null in a dry run.' }),
});
export type PackageDeletion = z.infer<typeof PackageDeletion>;

export const SweepReport = z.object({
  dry_run: z.boolean(),
  now: z.iso.datetime(),
  deleted: z.array(PackageDeletion),
  would_delete: z.array(PackageDeletion),
  blobs_removed: z
    .array(BlobRemoval)
    .meta({ description: 'Blobs whose content was removed because no live package and no manifest references them.' }),
  orphans_removed: z
    .array(OrphanRemoval)
    .meta({ description: 'Stored objects that no database row referenced, removed once older than the orphan safety window.' }),
});
export type SweepReport = z.infer<typeof SweepReport>;

/** POST /retention/sweep body. */
export const SweepRequest = z.object({ dry_run: z.boolean().default(false) }).strict();

/**
 * Runs one retention sweep.
 *
 * 1. Each eligible package (finalized, expired at `now`, no active hold) is deleted in its own
 *    transaction: the row is locked FOR UPDATE SKIP LOCKED, so two sweepers at once never delete one
 *    package twice, eligibility is checked again under the lock, the status becomes `deleted` and
 *    `package.deleted_by_retention` is written. File rows stay as the tombstone's file list.
 * 2. Every blob that no file of a non-deleted package and no manifest references loses its content
 *    (see removeUnreferencedBlobs). This step looks at the whole database, not only the packages deleted
 *    in this run, so a sweep killed between steps 1 and 2 is completed by the next one.
 * 3. Objects in the backends without any storage location row are removed (see removeOrphanObjects).
 *
 * A dry run performs only the selection of step 1 and reports it in `would_delete`. Runs that are not
 * dry runs count in retention_sweeps_total, and what they remove in retention_deletions_total.
 */
export async function sweepRetention(app: SweepContext, options: SweepOptions): Promise<SweepReport> {
  if (options.dryRun) return runSweep(app, options);

  const metrics = getMetrics();
  let report: SweepReport;
  try {
    report = await runSweep(app, options);
  } catch (error) {
    metrics.retentionSweeps.inc({ result: 'error' });
    throw error;
  }
  metrics.retentionSweeps.inc({ result: 'success' });
  return report;
}

async function runSweep(app: SweepContext, options: SweepOptions): Promise<SweepReport> {
  const now = options.now ?? new Date();
  const report: SweepReport = { dry_run: options.dryRun, now: now.toISOString(), deleted: [], would_delete: [], blobs_removed: [], orphans_removed: [] };
  const candidates = await findEligiblePackageIds(app.db, now);

  if (options.dryRun) {
    for (const id of candidates) {
      const deletion = await describeDeletion(app.db, id);
      if (deletion) report.would_delete.push(deletion);
    }
    return report;
  }

  // Deletions count as each step ends, so a sweep that fails later still reports what it removed.
  const deletions = getMetrics().retentionDeletions;
  for (const id of candidates) {
    const deletion = await deletePackageIfEligible(app.db, id, now, options.actor);
    if (deletion) {
      report.deleted.push(deletion);
      deletions.inc({ kind: 'package' });
      app.log.info({ package_id: id, actor: options.actor, file_count: deletion.file_count }, 'retention deleted a package');
    }
  }
  report.blobs_removed = await removeUnreferencedBlobs(app, options.actor);
  deletions.inc({ kind: 'blob' }, report.blobs_removed.length);
  report.orphans_removed = await removeOrphanObjects(app, now);
  deletions.inc({ kind: 'orphan_object' }, report.orphans_removed.length);
  return report;
}

/** Ids of finalized packages expired at `now` with no active hold, earliest expiry first. */
async function findEligiblePackageIds(db: Database, now: Date): Promise<string[]> {
  const activeHold = db
    .select({ id: holds.id })
    .from(holds)
    .where(and(eq(holds.packageId, packages.id), isNull(holds.releasedAt)));
  const rows = await db
    .select({ id: packages.id })
    .from(packages)
    .where(and(eq(packages.status, 'finalized'), lte(packages.expiresAt, now), notExists(activeHold)))
    .orderBy(asc(packages.expiresAt), asc(packages.id));
  return rows.map((row) => row.id);
}

async function describeDeletion(db: Database, id: string): Promise<PackageDeletion | null> {
  const [row] = await db.select().from(packages).where(eq(packages.id, id));
  if (!row || row.expiresAt === null) return null;
  return {
    package_id: row.id,
    retention_class: row.retentionClass,
    deletion_strategy: await deletionStrategyOf(db, row.retentionClass),
    manifest_digest: row.manifestDigest,
    file_count: await fileCountOf(db, row.id),
    expires_at: row.expiresAt.toISOString(),
    deleted_at: null,
  };
}

/**
 * Deletes one package if it is still eligible once its row is locked. Returns null when another
 * transaction holds the row, such as another sweeper or a hold in progress. Also returns null when the
 * package is no longer eligible.
 */
async function deletePackageIfEligible(db: Database, id: string, now: Date, actor: string): Promise<PackageDeletion | null> {
  return db.transaction(async (tx) => {
    const [row] = await tx.select().from(packages).where(eq(packages.id, id)).for('update', { skipLocked: true });
    if (!row) return null;
    const active = await listActiveHolds(tx, row.id);
    const eligibility = evaluateEligibility(
      row,
      active.map((hold) => hold.id),
      now,
    );
    if (!eligibility.eligible || row.expiresAt === null) return null;

    const deletedAt = new Date();
    const deletion: PackageDeletion = {
      package_id: row.id,
      retention_class: row.retentionClass,
      deletion_strategy: await deletionStrategyOf(tx, row.retentionClass),
      manifest_digest: row.manifestDigest,
      file_count: await fileCountOf(tx, row.id),
      expires_at: row.expiresAt.toISOString(),
      deleted_at: deletedAt.toISOString(),
    };
    const sequence = await appendEvent(tx, {
      eventType: 'package.deleted_by_retention',
      subjectKind: 'package',
      subjectId: row.id,
      actor,
      payload: { ...deletion },
    });
    await tx.update(packages).set({ status: 'deleted', deletedAt, lastEventSequence: sequence }).where(eq(packages.id, row.id));
    // The package's Idempotency-Key is freed as it would be by deleting an open package.
    await tx.delete(packageIdempotencyKeys).where(eq(packageIdempotencyKeys.packageId, row.id));
    return deletion;
  });
}

async function deletionStrategyOf(db: Executor, classId: string): Promise<string> {
  const [row] = await db.select({ strategy: retentionClasses.deletionStrategy }).from(retentionClasses).where(eq(retentionClasses.classId, classId));
  // packages.retention_class references retention_classes, so the row exists.
  return row.strategy;
}

async function fileCountOf(db: Executor, packageId: string): Promise<number> {
  const [row] = await db.select({ value: count() }).from(files).where(eq(files.packageId, packageId));
  return Number(row.value);
}
