/**
 * The hash chain over the event log.
 *
 * Each event's chain digest is
 *
 *   chain(n) = BLAKE3( chain(n-1) as 32 raw bytes ‖ deterministic CBOR of the link record of event n )
 *
 * where chain(0), the genesis value, is 32 zero bytes, and the link record is the CBOR map (RFC 8949
 * §4.2.1, keys in bytewise order of their encoding) of exactly these seven fields:
 *
 *   sequence            unsigned integer
 *   created_at          text, RFC 3339 in UTC with milliseconds, as Date.prototype.toISOString writes it
 *   event_type          text
 *   subject_kind        text
 *   subject_id          text
 *   actor               text
 *   payload_digest_hex  text, BLAKE3 of the stored payload bytes, 64 lowercase hex characters
 *
 * The payload enters through its digest, so a verifier also checks that BLAKE3(payload) equals
 * payload_digest_hex. Changing any field of an event, removing one or reordering two changes the chain
 * digest from that event on. This module has no database access, so the offline verifier uses it too.
 */
import { Blake3Hasher } from '@napi-rs/blake-hash';
import { encodeCanonicalCbor } from '../encoding/cbor';
import { blake3Hex } from '../digest/blake3-hex';
import { z } from 'zod';

/** chain(0): the value the first event is chained to. */
export const GENESIS_CHAIN_DIGEST_HEX = '0'.repeat(64);

const DIGEST_HEX_PATTERN = /^[0-9a-f]{64}$/;

/** The event fields covered by the chain, with their wire names. */
export interface ChainLink {
  sequence: number;
  created_at: string;
  event_type: string;
  subject_kind: string;
  subject_id: string;
  actor: string;
  payload_digest_hex: string;
}

/** Computes chain(n) from chain(n-1) and the link record of event n; throws on a malformed previous digest. */
export function computeChainDigestHex(previousChainDigestHex: string, link: ChainLink): string {
  if (!DIGEST_HEX_PATTERN.test(previousChainDigestHex)) {
    throw new RangeError(`A chain digest must be 64 lowercase hex characters, got ${JSON.stringify(previousChainDigestHex)}.`);
  }
  const record = encodeCanonicalCbor({
    sequence: link.sequence,
    created_at: link.created_at,
    event_type: link.event_type,
    subject_kind: link.subject_kind,
    subject_id: link.subject_id,
    actor: link.actor,
    payload_digest_hex: link.payload_digest_hex,
  });
  const hasher = new Blake3Hasher();
  hasher.update(Buffer.from(previousChainDigestHex, 'hex'));
  hasher.update(Buffer.from(record.buffer, record.byteOffset, record.byteLength));
  return hasher.digest('hex');
}

/** An event as the chain verifier reads it: the link fields, the payload bytes and the stored chain digest. */
export interface ChainedEvent extends ChainLink {
  payload: Uint8Array;
  chain_digest_hex: string | null;
}

export const ChainFailureReason = z.enum([
  'missing_event',
  'unexpected_sequence',
  'payload_digest_mismatch',
  'chain_digest_missing',
  'chain_digest_mismatch',
  'head_mismatch',
]);
export type ChainFailureReason = z.infer<typeof ChainFailureReason>;

export interface ChainFailure {
  sequence: number;
  reason: ChainFailureReason;
  detail: string;
}

/**
 * Checks events one at a time in the order they are read, expecting consecutive sequences from
 * `firstSequence` on. It stops at the first failure: later events are chained to a value that is
 * already wrong, so only the first bad sequence is meaningful.
 */
export class EventChainVerifier {
  #expectedSequence: number;
  #previousChainDigestHex: string;
  #checked = 0;
  #failure: ChainFailure | null = null;

  /** `previousChainDigestHex` is chain(firstSequence - 1): the genesis value when starting at sequence 1. */
  constructor(firstSequence = 1, previousChainDigestHex = GENESIS_CHAIN_DIGEST_HEX) {
    this.#expectedSequence = firstSequence;
    this.#previousChainDigestHex = previousChainDigestHex;
  }

  /** Number of events that passed every check. */
  get checked(): number {
    return this.#checked;
  }

  get failure(): ChainFailure | null {
    return this.#failure;
  }

  /** Sequence of the last event that passed, or firstSequence - 1 when none did. */
  get lastSequence(): number {
    return this.#expectedSequence - 1;
  }

  /** chain digest of the last event that passed. */
  get lastChainDigestHex(): string {
    return this.#previousChainDigestHex;
  }

  /** Checks the next event; returns false once any failure was found (and for every later call). */
  check(event: ChainedEvent): boolean {
    if (this.#failure) return false;
    const expected = this.#expectedSequence;

    if (event.sequence !== expected) {
      this.#failure =
        event.sequence > expected
          ? { sequence: expected, reason: 'missing_event', detail: `event ${expected} is missing; the next event read is ${event.sequence}.` }
          : { sequence: event.sequence, reason: 'unexpected_sequence', detail: `expected event ${expected}, read ${event.sequence}.` };
      return false;
    }

    const payloadDigestHex = blake3Hex(event.payload);
    if (payloadDigestHex !== event.payload_digest_hex) {
      this.#failure = {
        sequence: expected,
        reason: 'payload_digest_mismatch',
        detail: `BLAKE3 of the payload is ${payloadDigestHex}, the event records ${event.payload_digest_hex}.`,
      };
      return false;
    }

    if (event.chain_digest_hex === null) {
      this.#failure = { sequence: expected, reason: 'chain_digest_missing', detail: `event ${expected} has no chain digest.` };
      return false;
    }

    const chainDigestHex = computeChainDigestHex(this.#previousChainDigestHex, event);
    if (chainDigestHex !== event.chain_digest_hex) {
      this.#failure = {
        sequence: expected,
        reason: 'chain_digest_mismatch',
        detail: `the recomputed chain digest is ${chainDigestHex}, the event records ${event.chain_digest_hex}.`,
      };
      return false;
    }

    this.#previousChainDigestHex = chainDigestHex;
    this.#expectedSequence = expected + 1;
    this.#checked += 1;
    return true;
  }

  /**
   * Checks that the log ends where its head records: at `headSequence` with `headChainDigestHex`. A log
   * whose last events were removed fails here with missing_event for the first removed sequence.
   */
  checkEnd(headSequence: number, headChainDigestHex: string | null): boolean {
    if (this.#failure) return false;
    if (this.lastSequence < headSequence) {
      const missing = this.lastSequence + 1;
      this.#failure = { sequence: missing, reason: 'missing_event', detail: `the log ends at ${this.lastSequence}, but its head is at ${headSequence}.` };
      return false;
    }
    if (headChainDigestHex !== null && this.lastSequence === headSequence && headChainDigestHex !== this.#previousChainDigestHex) {
      this.#failure = {
        sequence: headSequence,
        reason: 'head_mismatch',
        detail: `the head records chain digest ${headChainDigestHex}, the log computes ${this.#previousChainDigestHex}.`,
      };
      return false;
    }
    return true;
  }
}
