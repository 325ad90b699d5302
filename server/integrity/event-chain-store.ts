import { and, asc, eq, gt, isNull, lt, sql } from 'drizzle-orm';
import { rowsOf, type Database, type Executor } from '@/db/client';
import { eventLogHead, events } from '@/db/schema';
import { computeChainDigestHex, GENESIS_CHAIN_DIGEST_HEX } from './event-chain';

const BACKFILL_PAGE_SIZE = 500;

type EventRow = typeof events.$inferSelect;

/** Builds the link record of a stored event, as event-chain.ts defines it. */
export function chainLinkOf(row: Pick<EventRow, 'sequence' | 'createdAt' | 'eventType' | 'subjectKind' | 'subjectId' | 'actor' | 'payloadDigestHex'>) {
  return {
    sequence: row.sequence,
    created_at: row.createdAt.toISOString(),
    event_type: row.eventType,
    subject_kind: row.subjectKind,
    subject_id: row.subjectId,
    actor: row.actor,
    payload_digest_hex: row.payloadDigestHex,
  };
}

/**
 * Fills in the chain digests of events written before the chain existed and returns the chain digest of
 * the event at `headSequence` (the genesis value when it is 0). The caller must hold the
 * event_log_head row lock, so no event is appended meanwhile. Rows without a chain digest form a prefix
 * of the log, because every event appended since the chain exists gets one.
 */
export async function backfillEventChain(tx: Executor, headSequence: number): Promise<string> {
  if (headSequence === 0) return GENESIS_CHAIN_DIGEST_HEX;

  const [firstUnchained] = await tx
    .select({ sequence: events.sequence })
    .from(events)
    .where(isNull(events.chainDigestHex))
    .orderBy(asc(events.sequence))
    .limit(1);
  if (!firstUnchained) {
    const [last] = await tx.select({ chain: events.chainDigestHex }).from(events).where(eq(events.sequence, headSequence));
    if (!last?.chain) throw new Error(`Cannot continue the event chain: event ${headSequence} is missing or has no chain digest.`);
    return last.chain;
  }

  const [previous] = await tx
    .select({ chain: events.chainDigestHex })
    .from(events)
    .where(lt(events.sequence, firstUnchained.sequence))
    .orderBy(sql`${events.sequence} DESC`)
    .limit(1);
  let chain = previous?.chain ?? GENESIS_CHAIN_DIGEST_HEX;
  let after = firstUnchained.sequence - 1;
  for (;;) {
    const rows = await tx
      .select()
      .from(events)
      .where(and(gt(events.sequence, after), isNull(events.chainDigestHex)))
      .orderBy(asc(events.sequence))
      .limit(BACKFILL_PAGE_SIZE);
    for (const row of rows) {
      chain = computeChainDigestHex(chain, chainLinkOf(row));
      await tx.update(events).set({ chainDigestHex: chain }).where(eq(events.sequence, row.sequence));
      after = row.sequence;
    }
    if (rows.length < BACKFILL_PAGE_SIZE) return chain;
  }
}

/**
 * Computes the chain digests missing from a database upgraded from before the chain existed, under the
 * event_log_head row lock. Returns the number of events it filled in (0 on every later start).
 */
export async function ensureEventChain(db: Database): Promise<number> {
  return db.transaction(async (tx) => {
    const head = rowsOf<{ sequence: string | number; chain_digest_hex: string | null }>(
      await tx.execute(sql`SELECT sequence, chain_digest_hex FROM event_log_head WHERE id = 1 FOR UPDATE`),
    )[0];
    const headSequence = Number(head.sequence);
    if (head.chain_digest_hex !== null || headSequence === 0) return 0;

    const [pending] = rowsOf<{ count: string | number }>(await tx.execute(sql`SELECT count(*) AS count FROM events WHERE chain_digest_hex IS NULL`));
    const chain = await backfillEventChain(tx, headSequence);
    await tx.update(eventLogHead).set({ chainDigestHex: chain }).where(eq(eventLogHead.id, 1));
    return Number(pending.count);
  });
}
