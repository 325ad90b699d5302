import { createHash, type Hash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { Transform, type Readable, type TransformCallback } from 'node:stream';
import { setImmediate as yieldToEventLoop } from 'node:timers/promises';
import { Blake3Hasher } from '@napi-rs/blake-hash';
import { PayloadTooLargeError } from '../errors';
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

/** BLAKE3 and SHA-256 of one byte sequence, computed together in a single pass. */
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

export interface DigestTransformOptions {
  /** Maximum number of bytes allowed through; the stream errors on the first byte past it. */
  maxBytes?: number;
  /** Builds the error raised when maxBytes is exceeded; defaults to a PayloadTooLargeError. */
  onExceed?: () => Error;
}

/**
 * Pass-through stream that digests every byte. Chunks are forwarded unchanged. A chunk that would
 * take the total past maxBytes is not forwarded, and the stream errors instead.
 */
export class DigestTransform extends Transform {
  readonly #digest = new DualDigest();
  readonly #maxBytes: number;
  readonly #onExceed: () => Error;
  #result: DigestResult | undefined;

  constructor(options: DigestTransformOptions = {}) {
    super();
    const maxBytes = options.maxBytes ?? Number.POSITIVE_INFINITY;
    if (!(maxBytes >= 0)) throw new RangeError(`maxBytes must be a non-negative number, got ${maxBytes}.`);
    this.#maxBytes = maxBytes;
    this.#onExceed =
      options.onExceed ??
      (() =>
        new PayloadTooLargeError(`The content exceeds the limit of ${maxBytes} bytes.`, { max_bytes: maxBytes }));
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    if (this.#digest.bytes + chunk.byteLength > this.#maxBytes) {
      callback(this.#onExceed());
      return;
    }
    if (chunk.byteLength <= DIGEST_SLICE_BYTES) {
      this.#digest.update(chunk);
      callback(null, chunk);
      return;
    }
    this.#digest.updateYielding(chunk).then(
      () => callback(null, chunk),
      (error: unknown) => callback(error as Error),
    );
  }

  override _flush(callback: TransformCallback): void {
    this.#result = this.#digest.finish();
    callback();
  }

  /** Bytes digested so far. */
  get bytes(): number {
    return this.#digest.bytes;
  }

  /** Returns the digests of everything that passed; throws until the writable side has finished. */
  result(): DigestResult {
    if (!this.#result) throw new Error('DigestTransform.result() was called before the stream finished.');
    return this.#result;
  }
}

/** Creates a pass-through stream that digests its bytes and enforces an optional size limit. */
export function createDigestTransform(options?: DigestTransformOptions): DigestTransform {
  return new DigestTransform(options);
}

/** Reads a source to its end and returns the BLAKE3 and SHA-256 digests and the size of its bytes. */
export async function digestStream(source: Readable | AsyncIterable<Uint8Array>): Promise<DigestResult> {
  const digest = new DualDigest();
  for await (const chunk of source as AsyncIterable<Uint8Array | string>) {
    // A Readable with an encoding set yields strings, which would hash their decoded form.
    if (typeof chunk === 'string') throw new TypeError('digestStream needs a byte stream, got a string chunk.');
    await digest.updateYielding(chunk);
  }
  return digest.finish();
}

/** Digests the file at `filePath`; rejects with the fs error (for example ENOENT) when it cannot be read. */
export async function digestFile(filePath: string): Promise<DigestResult> {
  return digestStream(createReadStream(filePath, { highWaterMark: DIGEST_SLICE_BYTES }));
}
