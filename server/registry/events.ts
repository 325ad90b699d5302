import { and, asc, desc, eq, gt, sql, type SQL } from 'drizzle-orm';
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

const insertEvents = new PreparedSql('insert_events', () => sql`
    WITH inserted AS (
      INSERT INTO events (sequence, created_at, event_type, subject_kind, subject_id, actor, payload, payload_digest_hex, chain_digest_hex)
      SELECT sequence, created_at, event_type, subject_kind, subject_id, actor, decode(payload_hex, 'hex'), payload_digest_hex, chain_digest_hex
      FROM unnest(${sql.placeholder('sequences')}::bigint[], ${sql.placeholder('created_ats')}::timestamptz[], ${sql.placeholder('event_types')}::text[],
                  ${sql.placeholder('subject_kinds')}::text[], ${sql.placeholder('subject_ids')}::text[], ${sql.placeholder('actors')}::text[],
                  ${sql.placeholder('payload_hexes')}::text[], ${sql.placeholder('payload_digest_hexes')}::text[], ${sql.placeholder('chain_digest_hexes')}::text[])
        AS event(sequence, created_at, event_type, subject_kind, subject_id, actor, payload_hex, payload_digest_hex, chain_digest_hex)
      RETURNING sequence
    ), head AS (
      UPDATE event_log_head SET chain_digest_hex = ${sql.placeholder('head_chain_digest_hex')} WHERE id = 1 RETURNING id
    )
    SELECT pg_notify(${EVENTS_CHANNEL}, ${sql.placeholder('notify_payload')}) FROM (SELECT count(*) FROM inserted) AS written, head`);

/**
 * Appends an event at `head`, the row that ADVANCE_EVENT_HEAD returned earlier in the same transaction,
 * and returns its sequence number. The head row stores the chain digest of the last event, so the new
 * event's chain digest is computed from it without reading the previous event.
 */
export async function appendEventAt(tx: Executor, head: EventHead, event: NewEvent): Promise<number> {
  const [sequence] = await appendEventsAt(tx, head, [event]);
  return sequence;
}

/**
 * Appends `newEvents` in order, in one statement, and returns their sequence numbers. `head` is the row
 * of a statement that advanced the head by `newEvents.length` (ADVANCE_EVENT_HEAD advances it by one), so
 * its sequence is the last event's and its chain digest the one of the event before the first.
 */
export async function appendEventsAt(tx: Executor, head: EventHead, newEvents: NewEvent[]): Promise<number[]> {
  if (newEvents.length === 0) return [];
  const firstSequence = Number(head.sequence) - newEvents.length + 1;
  // Null only before the first event, or in a database upgraded from before the chain existed.
  let previousChainDigestHex = head.previous_chain_digest_hex ?? (await backfillEventChain(tx, firstSequence - 1));
  const createdAt = new Date();
  const columns = {
    sequences: [] as number[],
    created_ats: [] as string[],
    event_types: [] as string[],
    subject_kinds: [] as string[],
    subject_ids: [] as string[],
    actors: [] as string[],
    payload_hexes: [] as string[],
    payload_digest_hexes: [] as string[],
    chain_digest_hexes: [] as string[],
  };
  newEvents.forEach((event, index) => {
    const payload = Buffer.from(encodeCanonicalCbor(event.payload));
    const row = {
      sequence: firstSequence + index,
      createdAt,
      eventType: event.eventType,
      subjectKind: event.subjectKind,
      subjectId: event.subjectId,
      actor: event.actor,
      payloadDigestHex: blake3Hex(payload),
    };
    previousChainDigestHex = computeChainDigestHex(previousChainDigestHex, chainLinkOf(row));
    columns.sequences.push(row.sequence);
    columns.created_ats.push(createdAt.toISOString());
    columns.event_types.push(row.eventType);
    columns.subject_kinds.push(row.subjectKind);
    columns.subject_ids.push(row.subjectId);
    columns.actors.push(row.actor);
    columns.payload_hexes.push(payload.toString('hex'));
    columns.payload_digest_hexes.push(row.payloadDigestHex);
    columns.chain_digest_hexes.push(previousChainDigestHex);
  });

  // One round trip while the head row is locked: the inserts, the head's chain digest and the NOTIFY.
  // Data-modifying CTEs always run to completion, and the SELECT reads nothing else.
  const lastSequence = Number(head.sequence);
  await insertEvents.execute(tx, { ...columns, head_chain_digest_hex: previousChainDigestHex, notify_payload: String(lastSequence) });
  return columns.sequences;
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

export type EventFilters = Pick<ListEventsOptions, 'subjectKind' | 'subjectId' | 'eventTypePrefix'>;

function filterConditions(filters: EventFilters): SQL[] {
  const conditions: SQL[] = [];
  if (filters.subjectKind) conditions.push(eq(events.subjectKind, filters.subjectKind));
  if (filters.subjectId) conditions.push(eq(events.subjectId, filters.subjectId));
  if (filters.eventTypePrefix) conditions.push(sql`${events.eventType} LIKE ${escapeLike(filters.eventTypePrefix) + '%'}`);
  return conditions;
}

/** Returns the query of the events with a sequence greater than `since`, oldest first. */
export function listEventsQuery(db: Executor, options: ListEventsOptions) {
  return db
    .select()
    .from(events)
    .where(and(gt(events.sequence, options.since), ...filterConditions(options)))
    .orderBy(asc(events.sequence))
    .limit(options.limit);
}

/** Returns events with a sequence greater than `since`, oldest first. */
export async function listEvents(db: Executor, options: ListEventsOptions): Promise<EventRecord[]> {
  const rows = await listEventsQuery(db, options);
  return rows.map(toEventRecord);
}

/**
 * Returns the cursor after which the last `count` events that match `filters` follow. That is the
 * sequence just before the `count`-th newest match, or 0 when fewer events match.
 */
export async function cursorBeforeLast(db: Executor, count: number, filters: EventFilters): Promise<number> {
  const rows = await cursorBeforeLastQuery(db, count, filters);
  return rows.length === 0 ? 0 : Number(rows[0].sequence) - 1;
}

/** Returns the query of the `count`-th newest event that matches `filters` (see cursorBeforeLast). */
export function cursorBeforeLastQuery(db: Executor, count: number, filters: EventFilters) {
  const conditions = filterConditions(filters);
  return db
    .select({ sequence: events.sequence })
    .from(events)
    .where(conditions.length > 0 ? and(...conditions) : undefined)
    .orderBy(desc(events.sequence))
    .limit(1)
    .offset(count - 1);
}

export async function headSequence(db: Executor): Promise<number> {
  const result = await db.execute(sql`SELECT sequence FROM event_log_head WHERE id = 1`);
  return Number(rowsOf<{ sequence: string | number }>(result)[0].sequence);
}

function escapeLike(value: string): string {
  return value.replace(/[\\%_]/g, (character) => `\\${character}`);
}
