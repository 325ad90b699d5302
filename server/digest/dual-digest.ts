import { createHash, type Hash } from 'node:crypto';
import { setImmediate as yieldToEventLoop } from 'node:timers/promises';
import { Blake3Hasher } from '@napi-rs/blake-hash';
import { getMetrics } from '../metrics/registry';

/**
 * Maximum bytes handed to one native hash call. Larger chunks are split so that each synchronous
 * call stays short, and the async paths below yield to the event loop between slices.
 */
export const DIGEST_SLICE_BYTES = 1024 * 1024;

export interface DigestResult {
  /** BLAKE3-256 of the bytes, 64 lowercase hex characters. */
  blake3Hex: string;
  /** SHA-256 of the bytes, 64 lowercase hex characters. */
  sha256Hex: string;
  sizeBytes: number;
}

/**
 * BLAKE3 and SHA-256 of one byte sequence, computed together in a single pass on the calling thread.
 * ParallelDigest runs SHA-256 on a worker thread instead, which is faster for large inputs.
 */
export class DualDigest {
  readonly #blake3 = new Blake3Hasher();
  readonly #sha256: Hash = createHash('sha256');
  #sizeBytes = 0;
  #result: DigestResult | undefined;

  /**
   * Adds bytes to both hashes, in slices of at most DIGEST_SLICE_BYTES. The call is synchronous, so
   * a caller that must not block the event loop passes chunks of at most that size or uses
   * `updateYielding`. Throws once `finish` has been called.
   */
  update(chunk: Uint8Array): void {
    this.#assertOpen();
    for (let offset = 0; offset < chunk.byteLength; offset += DIGEST_SLICE_BYTES) {
      this.#updateSlice(chunk.subarray(offset, offset + DIGEST_SLICE_BYTES));
    }
  }

  /** Adds bytes like `update`, yielding to the event loop between slices of a chunk over 1 MiB. */
  async updateYielding(chunk: Uint8Array): Promise<void> {
    this.#assertOpen();
    for (let offset = 0; offset < chunk.byteLength; offset += DIGEST_SLICE_BYTES) {
      if (offset > 0) {
        await yieldToEventLoop();
        this.#assertOpen();
      }
      this.#updateSlice(chunk.subarray(offset, offset + DIGEST_SLICE_BYTES));
    }
  }

  /** Number of bytes added so far. */
  get bytes(): number {
    return this.#sizeBytes;
  }

  /** Completes both hashes. Later calls return the same result; `update` afterwards throws. */
  finish(): DigestResult {
    this.#result ??= {
      blake3Hex: this.#blake3.digest('hex'),
      sha256Hex: this.#sha256.digest('hex'),
      sizeBytes: this.#sizeBytes,
    };
    return this.#result;
  }

  #updateSlice(slice: Uint8Array): void {
    const startedAt = performance.now();
    // The native hasher's binding is typed for Buffer; this view shares the slice's memory.
    this.#blake3.update(Buffer.isBuffer(slice) ? slice : Buffer.from(slice.buffer, slice.byteOffset, slice.byteLength));
    this.#sha256.update(slice);
    this.#sizeBytes += slice.byteLength;

    const metrics = getMetrics();
    metrics.digestBytes.inc(slice.byteLength);
    metrics.digestSeconds.inc((performance.now() - startedAt) / 1000);
  }

  #assertOpen(): void {
    if (this.#result) throw new Error('DualDigest.update was called after finish().');
  }
}
