import crypto from 'node:crypto';
import { and, asc, eq } from 'drizzle-orm';
import { z } from 'zod';
import type { Database, Executor } from '@/db/client';
import { holds, packages } from '@/db/schema';
import { ConflictError, NotFoundError } from '../errors';
import { appendEvent } from './events';
import { getPackageRow, lockPackage } from './packages';
import { RetentionReason } from './retention-extensions';

/** The hold id schema, built once rather than on every request. */
const HOLD_ID = z.uuid();

export const HoldRequest = z.object({ reason: RetentionReason }).strict();
export type HoldRequest = z.infer<typeof HoldRequest>;

/** A hold as the API returns it; the release fields are null while it is active. */
export const HoldRecord = z.object({
  hold_id: z.uuid(),
  package_id: z.uuid(),
  reason: z.string(),
  actor: z.string(),
  applied_at: z.iso.datetime(),
  active: z.boolean(),
  released_by: z.string().nullable(),
  released_at: z.iso.datetime().nullable(),
  release_reason: z.string().nullable(),
});
export type HoldRecord = z.infer<typeof HoldRecord>;

/** GET /packages/{id}/retention/holds: every hold, active and released, oldest first. */
export const HoldList = z.object({ holds: z.array(HoldRecord) });
export type HoldList = z.infer<typeof HoldList>;

type HoldRow = typeof holds.$inferSelect;

function toHoldRecord(row: HoldRow): HoldRecord {
  return {
    hold_id: row.id,
    package_id: row.packageId,
    reason: row.reason,
    actor: row.appliedBy,
    applied_at: row.appliedAt.toISOString(),
    active: row.releasedAt === null,
    released_by: row.releasedBy,
    released_at: row.releasedAt?.toISOString() ?? null,
    release_reason: row.releaseReason,
  };
}

/**
 * Applies a hold that keeps the package from deletion until it is released, and writes
 * `retention.hold_applied`, under the package row lock FOR UPDATE (which the sweep also takes, so a hold
 * either commits before the deletion or finds the package deleted). Open and finalized packages accept
 * holds, and several can be active at once. 409 for a package deleted by retention.
 */
export async function applyHold(db: Database, packageId: string, input: HoldRequest, actor: string): Promise<HoldRecord> {
  return db.transaction(async (tx) => {
    const row = await lockPackage(tx, packageId, 'update');
    if (row.status === 'deleted') {
      throw new ConflictError(`Package ${row.id} was deleted by retention; a hold can no longer keep it.`, {
        package_id: row.id,
        package_status: row.status,
      });
    }

    const holdId = crypto.randomUUID();
    const [hold] = await tx
      .insert(holds)
      .values({ id: holdId, packageId: row.id, reason: input.reason, appliedBy: actor, appliedAt: new Date() })
      .returning();
    const sequence = await appendEvent(tx, {
      eventType: 'retention.hold_applied',
      subjectKind: 'package',
      subjectId: row.id,
      actor,
      payload: { package_id: row.id, hold_id: holdId, reason: input.reason, actor },
    });
    await tx.update(packages).set({ lastEventSequence: sequence }).where(eq(packages.id, row.id));
    return toHoldRecord(hold);
  });
}

/**
 * Releases an active hold and writes `retention.hold_released`. 404 when the hold does not exist or
 * belongs to another package; 409 when it was already released.
 */
export async function releaseHold(db: Database, packageId: string, holdId: string, input: HoldRequest, actor: string): Promise<HoldRecord> {
  return db.transaction(async (tx) => {
    const row = await lockPackage(tx, packageId, 'update');
    const hold = await findHold(tx, row.id, holdId);
    if (hold.releasedAt !== null) {
      throw new ConflictError(`Hold ${hold.id} was already released at ${hold.releasedAt.toISOString()} by ${hold.releasedBy}.`, {
        hold_id: hold.id,
        released_at: hold.releasedAt.toISOString(),
        released_by: hold.releasedBy,
      });
    }

    const [released] = await tx
      .update(holds)
      .set({ releasedAt: new Date(), releasedBy: actor, releaseReason: input.reason })
      .where(eq(holds.id, hold.id))
      .returning();
    const sequence = await appendEvent(tx, {
      eventType: 'retention.hold_released',
      subjectKind: 'package',
      subjectId: row.id,
      actor,
      payload: { package_id: row.id, hold_id: hold.id, reason: input.reason, actor },
    });
    await tx.update(packages).set({ lastEventSequence: sequence }).where(eq(packages.id, row.id));
    return toHoldRecord(released);
  });
}

/** Lists every hold of a package, active and released, oldest first. */
export async function listHolds(db: Executor, packageId: string): Promise<HoldRecord[]> {
  const row = await getPackageRow(db, packageId);
  const rows = await db.select().from(holds).where(eq(holds.packageId, row.id)).orderBy(asc(holds.appliedAt), asc(holds.id));
  return rows.map(toHoldRecord);
}

async function findHold(tx: Executor, packageId: string, holdId: string): Promise<HoldRow> {
  const parsed = HOLD_ID.safeParse(holdId);
  if (!parsed.success) throw new NotFoundError(`Hold of package ${packageId}`, holdId);
  const rows = await tx
    .select()
    .from(holds)
    .where(and(eq(holds.id, parsed.data.toLowerCase()), eq(holds.packageId, packageId)));
  if (rows.length === 0) throw new NotFoundError(`Hold of package ${packageId}`, holdId);
  return rows[0];
}
