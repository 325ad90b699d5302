import { and, asc, eq, inArray, like, or } from 'drizzle-orm';
import type { Executor } from '@/db/client';
import { events } from '@/db/schema';
import { toEventRecord, type EventList } from './events';
import { getPackageRow } from './packages';

/** Event types outside the `retention.` prefix that belong to a package's retention history. */
const LIFE_CYCLE_EVENT_TYPES = ['package.created', 'package.finalized', 'package.deleted_by_retention'];

/**
 * Returns the package's retention-relevant events, oldest first: creation, finalization (which sets the
 * first expiry), every `retention.*` event and the deletion by retention. The list holds only stored
 * values, so repeated calls return equal data. 404 for an unknown package.
 */
export async function listRetentionHistory(db: Executor, id: string): Promise<EventList> {
  const row = await getPackageRow(db, id);
  const rows = await db
    .select()
    .from(events)
    .where(
      and(
        eq(events.subjectKind, 'package'),
        eq(events.subjectId, row.id),
        or(inArray(events.eventType, LIFE_CYCLE_EVENT_TYPES), like(events.eventType, 'retention.%')),
      ),
    )
    .orderBy(asc(events.sequence));
  return { events: rows.map(toEventRecord) };
}
