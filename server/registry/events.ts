import { and, asc, eq, gt, sql } from 'drizzle-orm';
import { rowsOf, type Executor } from '@/db/client';
import { PreparedSql } from '@/db/prepared';
import { events } from '@/db/schema';
import { decodeCbor, encodeCanonicalCbor } from '../encoding/cbor';
import { blake3Hex } from '../digest/blake3-hex';
import { computeChainDigestHex } from '../integrity/event-chain';
import { backfillEventChain, chainLinkOf } from '../integrity/event-chain-store';
import { z } from 'zod';

export const EVENTS_CHANNEL = 'artifact_store_events';

export type SubjectKind = 'package' | 'file' | 'metadata_schema' | 'upload' | 'token' | 'blob';

export interface NewEvent {
  eventType: string;
  subjectKind: SubjectKind;
  subjectId: string;
  actor: string;
  payload: Record<string, unknown>;
}

/** An event as the API returns it, with its payload decoded. */
export const EventRecord = z.object({
  sequence: z.number().int().min(1),
  created_at: z.iso.datetime(),
  event_type: z.string(),
  subject_kind: z.string(),
  subject_id: z.string(),
  actor: z.string(),
  payload_digest_hex: z.string().regex(/^[0-9a-f]{64}$/),
  chain_digest_hex: z
    .string()
    .regex(/^[0-9a-f]{64}$/)
    .nullable()
    .meta({ description: 'Hash chain digest up to and including this event; null until the chain backfill has reached it.' }),
  payload: z.unknown(),
});
export type EventRecord = z.infer<typeof EventRecord>;

/** GET /events and GET /packages/{id}/retention/history: events, oldest first. */
export const EventPage = z.object({
  events: z.array(EventRecord),
  next_cursor: z.string().regex(/^\d+$/).meta({ description: 'The sequence to pass as `since` on the next request.' }),
});
export type EventPage = z.infer<typeof EventPage>;

/** GET /packages/{id}/retention/history: a package's retention events, oldest first. */
export const EventList = z.object({ events: z.array(EventRecord) });
export type EventList = z.infer<typeof EventList>;

/**
 * SQL that takes the next sequence number from the single `event_log_head` row and returns it with the
 * chain digest of the last event. A statement that records a change can include it as a CTE, so that
 * taking the sequence costs no round trip of its own. Pass the row it returns to appendEventAt.
 */
export const ADVANCE_EVENT_HEAD = sql`UPDATE event_log_head SET sequence = sequence + 1 WHERE id = 1 RETURNING sequence, chain_digest_hex AS previous_chain_digest_hex`;

/** The row that ADVANCE_EVENT_HEAD returns. */
export interface EventHead {
  sequence: string | number;
  previous_chain_digest_hex: string | null;
}

const advanceEventHead = new PreparedSql('advance_event_head', () => ADVANCE_EVENT_HEAD);

/**
 * Appends an event inside the caller's transaction and returns its sequence number.
 *
 * The sequence comes from the single `event_log_head` row, incremented with UPDATE: the row lock it takes
 * is held until the transaction ends, so a second writer waits until the first has committed (or rolled
 * back, which also undoes its increment). Sequence numbers are therefore gap-free and visible in commit
 * order, and a reader that has seen N never sees N-1 appear later. Every write after this one in the
 * transaction makes other writers wait longer, so call it late. NOTIFY is delivered at commit.
 */
export async function appendEvent(tx: Executor, event: NewEvent): Promise<number> {
  const head = rowsOf<EventHead>(await advanceEventHead.execute(tx, {}))[0];
  return appendEventAt(tx, head, event);
}

const insertEvent = new PreparedSql('insert_event', () => sql`
    WITH inserted AS (
      INSERT INTO events (sequence, created_at, event_type, subject_kind, subject_id, actor, payload, payload_digest_hex, chain_digest_hex)
      VALUES (${sql.placeholder('sequence')}, ${sql.placeholder('created_at')}::timestamptz, ${sql.placeholder('event_type')},
              ${sql.placeholder('subject_kind')}, ${sql.placeholder('subject_id')}, ${sql.placeholder('actor')},
              decode(${sql.placeholder('payload_hex')}, 'hex'), ${sql.placeholder('payload_digest_hex')}, ${sql.placeholder('chain_digest_hex')})
      RETURNING sequence
    ), head AS (
      UPDATE event_log_head SET chain_digest_hex = ${sql.placeholder('chain_digest_hex')} WHERE id = 1 RETURNING id
    )
    SELECT pg_notify(${EVENTS_CHANNEL}, ${sql.placeholder('notify_payload')}) FROM inserted, head`);

/**
 * Appends an event at `head`, the row that ADVANCE_EVENT_HEAD returned earlier in the same transaction,
 * and returns its sequence number. The head row stores the chain digest of the last event, so the new
 * event's chain digest is computed from it without reading the previous event.
 */
export async function appendEventAt(tx: Executor, head: EventHead, event: NewEvent): Promise<number> {
  const sequence = Number(head.sequence);
  // Null only before the first event, or in a database upgraded from before the chain existed.
  const previousChainDigestHex = head.previous_chain_digest_hex ?? (await backfillEventChain(tx, sequence - 1));
  const payload = Buffer.from(encodeCanonicalCbor(event.payload));
  const row = {
    sequence,
    createdAt: new Date(),
    eventType: event.eventType,
    subjectKind: event.subjectKind,
    subjectId: event.subjectId,
    actor: event.actor,
    payload,
    payloadDigestHex: blake3Hex(payload),
  };
  const chainDigestHex = computeChainDigestHex(previousChainDigestHex, chainLinkOf(row));

  // One round trip while the head row is locked: the insert, the head's chain digest and the NOTIFY.
  // Data-modifying CTEs always run to completion, and the SELECT reads nothing else.
  await insertEvent.execute(tx, {
    sequence,
    created_at: row.createdAt.toISOString(),
    event_type: row.eventType,
    subject_kind: row.subjectKind,
    subject_id: row.subjectId,
    actor: row.actor,
    payload_hex: payload.toString('hex'),
    payload_digest_hex: row.payloadDigestHex,
    chain_digest_hex: chainDigestHex,
    notify_payload: String(sequence),
  });
  return sequence;
}

type EventRow = typeof events.$inferSelect;

export function toEventRecord(row: EventRow): EventRecord {
  return {
    sequence: row.sequence,
    created_at: row.createdAt.toISOString(),
    event_type: row.eventType,
    subject_kind: row.subjectKind,
    subject_id: row.subjectId,
    actor: row.actor,
    payload_digest_hex: row.payloadDigestHex,
    chain_digest_hex: row.chainDigestHex,
    payload: decodeCbor(row.payload),
  };
}

export interface ListEventsOptions {
  since: number;
  limit: number;
  subjectKind?: string;
  subjectId?: string;
  eventTypePrefix?: string;
}

/** Returns events with a sequence greater than `since`, oldest first. */
export async function listEvents(db: Executor, options: ListEventsOptions): Promise<EventRecord[]> {
  const conditions = [gt(events.sequence, options.since)];
  if (options.subjectKind) conditions.push(eq(events.subjectKind, options.subjectKind));
  if (options.subjectId) conditions.push(eq(events.subjectId, options.subjectId));
  if (options.eventTypePrefix) conditions.push(sql`${events.eventType} LIKE ${escapeLike(options.eventTypePrefix) + '%'}`);
  const rows = await db
    .select()
    .from(events)
    .where(and(...conditions))
    .orderBy(asc(events.sequence))
    .limit(options.limit);
  return rows.map(toEventRecord);
}

export async function headSequence(db: Executor): Promise<number> {
  const result = await db.execute(sql`SELECT sequence FROM event_log_head WHERE id = 1`);
  return Number(rowsOf<{ sequence: string | number }>(result)[0].sequence);
}

function escapeLike(value: string): string {
  return value.replace(/[\\%_]/g, (character) => `\\${character}`);
}
