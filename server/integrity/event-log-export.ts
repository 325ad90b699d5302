import { asc, gt } from 'drizzle-orm';
import type { Executor } from '@/db/client';
import { events } from '@/db/schema';
import { encodeCanonicalCbor } from '../encoding/cbor';
import { canonicalJson } from '../encoding/jcs';
import { chainLinkOf } from './event-chain-store';
import { z } from 'zod';

const PAGE_SIZE = 500;

export const EventExportFormat = z.enum(['cbor-seq', 'jsonl']);
export type EventExportFormat = z.infer<typeof EventExportFormat>;

/** GET /events/export query. */
export const EventExportQuery = z.object({ format: EventExportFormat.default('cbor-seq') }).strict();

export const EVENT_EXPORT_MEDIA_TYPES: Record<EventExportFormat, string> = {
  'cbor-seq': 'application/cbor-seq',
  jsonl: 'application/jsonl',
};

/**
 * Yields the whole event log, oldest first, one record per event, read a page at a time.
 *
 * `cbor-seq` is an RFC 8742 CBOR sequence: one deterministic CBOR map per event with the link fields of
 * event-chain.ts, `payload` as a byte string holding the stored CBOR payload, and `chain_digest_hex`.
 * `jsonl` is one RFC 8785 JSON object per line with the same fields, except that the payload bytes
 * travel base64-encoded as `payload_cbor_base64`. Both carry everything the offline chain check needs.
 */
export async function* exportEventLog(db: Executor, format: EventExportFormat): AsyncGenerator<Uint8Array> {
  const encoder = new TextEncoder();
  let after = 0;
  for (;;) {
    const rows = await db.select().from(events).where(gt(events.sequence, after)).orderBy(asc(events.sequence)).limit(PAGE_SIZE);
    const chunks: Uint8Array[] = [];
    for (const row of rows) {
      const record = { ...chainLinkOf(row), chain_digest_hex: row.chainDigestHex };
      chunks.push(
        format === 'cbor-seq'
          ? encodeCanonicalCbor({ ...record, payload: new Uint8Array(row.payload) })
          : encoder.encode(`${canonicalJson({ ...record, payload_cbor_base64: row.payload.toString('base64') })}\n`),
      );
    }
    if (chunks.length > 0) yield Buffer.concat(chunks);
    if (rows.length < PAGE_SIZE) return;
    after = rows[rows.length - 1].sequence;
  }
}
