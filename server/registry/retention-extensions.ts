import { eq } from 'drizzle-orm';
import { z } from 'zod';
import type { Database } from '@/db/client';
import { packages } from '@/db/schema';
import { ConflictError } from '../errors';
import { appendEvent } from './events';
import { lockPackage } from './packages';
import { getRetentionState, type RetentionState } from './retention-state';

/** A reason given for a retention change: non-blank text without control characters other than newlines. */
export const RetentionReason = z
  .string()
  .max(2048)
  .refine((value) => value.trim().length > 0, 'must not be empty')
  .refine((value) => !/[\u0000-\u0009\u000b-\u001f\u007f]/.test(value), 'control characters other than newline are not allowed')
  .refine((value) => value.isWellFormed(), 'lone UTF-16 surrogates are not allowed');

export const ExtendRetention = z
  .object({
    new_expires_at: z.iso.datetime({ offset: true, message: 'must be an RFC 3339 date-time such as 2030-01-31T00:00:00Z' }),
    reason: RetentionReason,
  })
  .strict();
export type ExtendRetention = z.infer<typeof ExtendRetention>;

/**
 * Moves a finalized package's expiry later and writes `retention.extended` in the same transaction,
 * holding the package row FOR UPDATE so a concurrent sweep either reads the new expiry or has already
 * deleted the package. Throws 409 when the package is open (its expiry is set only at finalize, so a
 * hold is the way to keep an open package), deleted, of a class that never expires, or when the
 * requested expiry is not later than the current one.
 */
export async function extendRetention(db: Database, id: string, input: ExtendRetention, actor: string): Promise<RetentionState> {
  const requested = new Date(input.new_expires_at);

  await db.transaction(async (tx) => {
    const row = await lockPackage(tx, id, 'update');
    if (row.status === 'open') {
      throw new ConflictError(
        `Package ${row.id} is open; its expiry is set when it is finalized, so it cannot be extended yet. Apply a hold to keep an open package.`,
        { package_id: row.id, package_status: row.status },
      );
    }
    if (row.status === 'deleted') {
      throw new ConflictError(`Package ${row.id} was deleted by retention; its expiry can no longer change.`, {
        package_id: row.id,
        package_status: row.status,
      });
    }
    if (row.expiresAt === null) {
      throw new ConflictError(`Package ${row.id} never expires (retention class "${row.retentionClass}" has no expiry), so it cannot be extended.`, {
        package_id: row.id,
        current_expires_at: null,
        requested_expires_at: requested.toISOString(),
      });
    }
    if (requested.getTime() <= row.expiresAt.getTime()) {
      throw new ConflictError(
        `The requested expiry ${requested.toISOString()} is not later than the current expiry ${row.expiresAt.toISOString()}; an extension can only move the expiry later.`,
        { package_id: row.id, current_expires_at: row.expiresAt.toISOString(), requested_expires_at: requested.toISOString() },
      );
    }

    const sequence = await appendEvent(tx, {
      eventType: 'retention.extended',
      subjectKind: 'package',
      subjectId: row.id,
      actor,
      payload: {
        package_id: row.id,
        previous_expires_at: row.expiresAt.toISOString(),
        new_expires_at: requested.toISOString(),
        reason: input.reason,
      },
    });
    await tx.update(packages).set({ expiresAt: requested, lastEventSequence: sequence }).where(eq(packages.id, row.id));
  });

  return getRetentionState(db, id);
}
