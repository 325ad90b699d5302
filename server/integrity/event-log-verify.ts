import { and, asc, eq, gte, lte } from 'drizzle-orm';
import type { Executor } from '@/db/client';
import { eventLogHead, events } from '@/db/schema';
import { ChainFailureReason, EventChainVerifier, GENESIS_CHAIN_DIGEST_HEX } from './event-chain';
import { chainLinkOf } from './event-chain-store';
import { z } from 'zod';
import { queryInteger } from '../http/body';

const PAGE_SIZE = 1000;

type EventRow = typeof events.$inferSelect;

export interface EventLogVerifyOptions {
  /** First sequence to check; default 1. */
  from?: number;
  /** Last sequence to check, at most the head's; default the head's, which also checks the head against the log. */
  to?: number;
}

/** GET /events/verify query: the sequence range to check. */
export const EventLogVerifyQuery = z
  .object({
    from: queryInteger(1, Number.MAX_SAFE_INTEGER),
    to: queryInteger(0, Number.MAX_SAFE_INTEGER),
  })
  .strict();

export const EventLogVerifyReport = z.object({
  ok: z.boolean(),
  checked: z.number().int().min(0).meta({ description: 'Number of events that passed every check.' }),
  first_bad_sequence: z.number().int().nullable(),
  reason: ChainFailureReason.nullable(),
  detail: z.string().nullable(),
  from: z.number().int(),
  to: z.number().int(),
});
export type EventLogVerifyReport = z.infer<typeof EventLogVerifyReport>;

/**
 * Recomputes the event log's payload digests and hash chain from `from` to `to`, reading a page of
 * events at a time. Starting after sequence 1 trusts the stored chain digest of event from-1. Reports
 * the first bad sequence: a missing sequence, a payload that does not match its digest, or a chain
 * digest that does not match the recomputed one (an edited field or two events in swapped places).
 */
export async function verifyEventLog(db: Executor, options: EventLogVerifyOptions = {}): Promise<EventLogVerifyReport> {
  const [head] = await db.select().from(eventLogHead).where(eq(eventLogHead.id, 1));
  const from = options.from ?? 1;
  // A range past the head is checked up to the head: sequences not yet assigned are not missing.
  const to = Math.min(options.to ?? head.sequence, head.sequence);
  const report = (verifier: EventChainVerifier): EventLogVerifyReport => ({
    ok: verifier.failure === null,
    checked: verifier.checked,
    first_bad_sequence: verifier.failure?.sequence ?? null,
    reason: verifier.failure?.reason ?? null,
    detail: verifier.failure?.detail ?? null,
    from,
    to,
  });

  let previousChainDigestHex = GENESIS_CHAIN_DIGEST_HEX;
  if (from > 1) {
    const [previous] = await db.select({ chain: events.chainDigestHex }).from(events).where(eq(events.sequence, from - 1));
    if (!previous?.chain) {
      const verifier = new EventChainVerifier(from - 1);
      verifier.checkEnd(from - 1, null);
      return report(verifier);
    }
    previousChainDigestHex = previous.chain;
  }

  const verifier = new EventChainVerifier(from, previousChainDigestHex);
  let after = from - 1;
  while (after < to) {
    const rows: EventRow[] = await db
      .select()
      .from(events)
      .where(and(gte(events.sequence, after + 1), lte(events.sequence, to)))
      .orderBy(asc(events.sequence))
      .limit(PAGE_SIZE);
    for (const row of rows) {
      if (!verifier.check({ ...chainLinkOf(row), payload: row.payload, chain_digest_hex: row.chainDigestHex })) return report(verifier);
    }
    if (rows.length < PAGE_SIZE) break;
    after = rows[rows.length - 1].sequence;
  }

  // Events removed from the end of the range leave a gap that no later row reveals.
  verifier.checkEnd(to, options.to === undefined ? head.chainDigestHex : null);
  return report(verifier);
}
