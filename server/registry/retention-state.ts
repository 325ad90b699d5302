import { and, asc, eq, isNull } from 'drizzle-orm';
import type { Executor } from '@/db/client';
import { holds, packages } from '@/db/schema';
import { getPackageRow, PackageStatus } from './packages';
import { z } from 'zod';

type PackageRow = typeof packages.$inferSelect;
type HoldRow = typeof holds.$inferSelect;

/** An active hold as the retention state lists it. */
export const ActiveHold = z.object({
  hold_id: z.uuid(),
  reason: z.string(),
  actor: z.string(),
  applied_at: z.iso.datetime(),
});
export type ActiveHold = z.infer<typeof ActiveHold>;

/** A package's retention state as GET /packages/{id}/retention returns it. */
export const RetentionState = z.object({
  package_id: z.uuid(),
  status: PackageStatus,
  current_expires_at: z.iso
    .datetime()
    .nullable()
    .meta({ description: 'Null when the package is open (the expiry is set at finalize) or its class never expires.' }),
  effective_class: z.string(),
  active_holds: z.array(ActiveHold),
  active_hold_id: z.uuid().nullable().meta({ description: 'The most recently applied active hold, or null.' }),
  eligible_for_deletion: z.boolean(),
  reasons: z
    .array(z.string())
    .meta({ description: 'The causes that keep the package from deletion, one per entry; for an eligible package, the cause that allows it.' }),
});
export type RetentionState = z.infer<typeof RetentionState>;

export interface Eligibility {
  eligible: boolean;
  reasons: string[];
}

/**
 * Decides whether retention may delete a package at `now`: it must be finalized, have an expiry at or
 * before `now`, and have no active hold. `activeHoldIds` are the ids of the package's unreleased holds.
 */
export function evaluateEligibility(row: PackageRow, activeHoldIds: string[], now: Date): Eligibility {
  if (row.status === 'deleted') return { eligible: false, reasons: ['already deleted'] };

  const reasons: string[] = [];
  if (row.status !== 'finalized') {
    reasons.push('not finalized');
  } else if (row.expiresAt === null) {
    reasons.push(`never expires (retention class "${row.retentionClass}" has no expiry)`);
  } else if (row.expiresAt.getTime() > now.getTime()) {
    reasons.push(`not expired until ${row.expiresAt.toISOString()}`);
  }
  if (activeHoldIds.length > 0) reasons.push(`held by holds ${activeHoldIds.join(', ')}`);

  if (reasons.length > 0) return { eligible: false, reasons };
  return { eligible: true, reasons: [`expired at ${row.expiresAt!.toISOString()} with no active hold`] };
}

/** Returns the package's unreleased holds, oldest first (ties ordered by id). */
export async function listActiveHolds(db: Executor, packageId: string): Promise<HoldRow[]> {
  return db
    .select()
    .from(holds)
    .where(and(eq(holds.packageId, packageId), isNull(holds.releasedAt)))
    .orderBy(asc(holds.appliedAt), asc(holds.id));
}

/** Reads a package's retention state as of `now`; 404 for an unknown package. */
export async function getRetentionState(db: Executor, id: string, now = new Date()): Promise<RetentionState> {
  const row = await getPackageRow(db, id);
  const active = await listActiveHolds(db, row.id);
  const eligibility = evaluateEligibility(
    row,
    active.map((hold) => hold.id),
    now,
  );
  return {
    package_id: row.id,
    status: row.status,
    current_expires_at: row.expiresAt?.toISOString() ?? null,
    effective_class: row.retentionClass,
    active_holds: active.map((hold) => ({
      hold_id: hold.id,
      reason: hold.reason,
      actor: hold.appliedBy,
      applied_at: hold.appliedAt.toISOString(),
    })),
    active_hold_id: active.length > 0 ? active[active.length - 1].id : null,
    eligible_for_deletion: eligibility.eligible,
    reasons: eligibility.reasons,
  };
}
