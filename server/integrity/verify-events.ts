/**
 * Offline check of an exported event log (GET /api/v1/events/export) with no server or database. The
 * format is detected from the first byte: `{` starts JSON Lines, anything else a CBOR sequence.
 */
import { createReadStream } from 'node:fs';
import { decodeFirst } from 'cborg';
import { z } from 'zod';
import { EventChainVerifier, type ChainFailureReason, type ChainedEvent } from './event-chain';

const ExportedEventFields = {
  sequence: z.number().int().min(1),
  created_at: z.string(),
  event_type: z.string(),
  subject_kind: z.string(),
  subject_id: z.string(),
  actor: z.string(),
  payload_digest_hex: z.string(),
  chain_digest_hex: z.string().nullable(),
};
const CborExportedEvent = z.object({ ...ExportedEventFields, payload: z.instanceof(Uint8Array) });
const JsonExportedEvent = z.object({ ...ExportedEventFields, payload_cbor_base64: z.string() });

/** A CBOR item that still does not decode after this many buffered bytes is treated as malformed. */
const MAX_RECORD_BYTES = 64 * 1024 * 1024;

export interface EventExportVerifyReport {
  ok: boolean;
  checked: number;
  first_bad_sequence: number | null;
  reason: ChainFailureReason | 'malformed_record' | null;
  detail: string | null;
}

/** Raised for an export whose bytes cannot be decoded into event records. */
export class EventExportFormatError extends Error {
  override name = 'EventExportFormatError';
}

async function* readCborSequence(chunks: AsyncIterable<Buffer>, first: Buffer): AsyncGenerator<unknown> {
  let buffered = first;
  let ended = false;
  const iterator = chunks[Symbol.asyncIterator]();
  while (buffered.length > 0 || !ended) {
    if (buffered.length === 0) {
      const next = await iterator.next();
      if (next.done) return;
      buffered = next.value;
      continue;
    }
    try {
      const [item, remainder] = decodeFirst(buffered, { strict: true, allowIndefinite: false, allowUndefined: false, rejectDuplicateMapKeys: true });
      yield item;
      buffered = Buffer.from(remainder);
    } catch (error) {
      // The item may continue in the next chunk; a real decoding error persists to the end of the input.
      const next = ended ? { done: true as const, value: undefined } : await iterator.next();
      if (next.done) {
        ended = true;
        throw new EventExportFormatError(`Invalid CBOR in the event export: ${(error as Error).message}`, { cause: error });
      }
      if (buffered.length > MAX_RECORD_BYTES) throw new EventExportFormatError(`An event record in the export exceeds ${MAX_RECORD_BYTES} bytes.`);
      buffered = Buffer.concat([buffered, next.value]);
    }
  }
}

async function* readJsonLines(chunks: AsyncIterable<Buffer>, first: Buffer): AsyncGenerator<unknown> {
  let pending = first.toString('utf8');
  const parseLine = (line: string) => {
    try {
      return JSON.parse(line) as unknown;
    } catch (error) {
      throw new EventExportFormatError(`Invalid JSON line in the event export: ${(error as Error).message}`, { cause: error });
    }
  };
  const flush = function* (final: boolean) {
    const lines = pending.split('\n');
    pending = final ? '' : lines.pop()!;
    for (const line of lines) if (line.trim() !== '') yield parseLine(line);
  };
  yield* flush(false);
  for await (const chunk of chunks) {
    pending += chunk.toString('utf8');
    yield* flush(false);
  }
  yield* flush(true);
}

function toChainedEvent(record: unknown): ChainedEvent {
  const cbor = CborExportedEvent.safeParse(record);
  if (cbor.success) return cbor.data;
  const json = JsonExportedEvent.safeParse(record);
  if (json.success) {
    const { payload_cbor_base64, ...rest } = json.data;
    return { ...rest, payload: Buffer.from(payload_cbor_base64, 'base64') };
  }
  throw new EventExportFormatError(`An event record has missing or invalid fields: ${JSON.stringify(record, (_key, value) => (value instanceof Uint8Array ? '<bytes>' : value)).slice(0, 300)}`);
}

/**
 * Checks the hash chain of an exported event log file from sequence 1, streaming it.
 * NOTE: the export carries no head record, so events removed from its end are not detected offline;
 * GET /api/v1/events/verify compares the log with its head and finds them. A record that
 * cannot be decoded is reported as `malformed_record` at the sequence expected next.
 */
export async function verifyEventExportFile(filePath: string): Promise<EventExportVerifyReport> {
  const stream = createReadStream(filePath);
  const chunks = stream[Symbol.asyncIterator]() as AsyncIterator<Buffer>;
  const iterable: AsyncIterable<Buffer> = { [Symbol.asyncIterator]: () => chunks };
  const verifier = new EventChainVerifier();
  const first = await chunks.next();

  try {
    if (!first.done) {
      const records = first.value[0] === 0x7b ? readJsonLines(iterable, first.value) : readCborSequence(iterable, first.value);
      for await (const record of records) {
        if (!verifier.check(toChainedEvent(record))) break;
      }
    }
  } catch (error) {
    if (!(error instanceof EventExportFormatError)) throw error;
    return { ok: false, checked: verifier.checked, first_bad_sequence: verifier.lastSequence + 1, reason: 'malformed_record', detail: error.message };
  } finally {
    stream.destroy();
  }

  const failure = verifier.failure;
  return { ok: failure === null, checked: verifier.checked, first_bad_sequence: failure?.sequence ?? null, reason: failure?.reason ?? null, detail: failure?.detail ?? null };
}
