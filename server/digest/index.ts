import fs from 'node:fs/promises';
import { Transform, type Readable, type TransformCallback } from 'node:stream';
import { PayloadTooLargeError } from '../errors';
import { DIGEST_SLICE_BYTES, type DigestResult } from './dual-digest';
import { INLINE_DIGEST_MAX_BYTES, ParallelDigest } from './parallel-digest';

export { DIGEST_SLICE_BYTES, DualDigest, type DigestResult } from './dual-digest';
export { INLINE_DIGEST_MAX_BYTES, ParallelDigest } from './parallel-digest';

export interface DigestTransformOptions {
  /** Maximum number of bytes allowed through; the stream errors on the first byte past it. */
  maxBytes?: number;
  /** Builds the error raised when maxBytes is exceeded; defaults to a PayloadTooLargeError. */
  onExceed?: () => Error;
}

/**
 * Pass-through stream that digests every byte with a ParallelDigest. Chunks are forwarded unchanged.
 * A chunk that would take the total past maxBytes is not forwarded, and the stream errors instead.
 * A stream destroyed before its end frees the digest's worker state.
 */
export class DigestTransform extends Transform {
  readonly #digest = new ParallelDigest();
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
        new PayloadTooLargeError(`The content exceeds the limit of ${maxBytes} bytes.`, { limit_bytes: maxBytes, max_bytes: maxBytes }));
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    if (this.#digest.bytes + chunk.byteLength > this.#maxBytes) {
      callback(this.#onExceed());
      return;
    }
    this.#digest.update(chunk).then(
      () => callback(null, chunk),
      (error: unknown) => callback(error as Error),
    );
  }

  override _flush(callback: TransformCallback): void {
    this.#digest.finish().then(
      (result) => {
        this.#result = result;
        callback();
      },
      (error: unknown) => callback(error as Error),
    );
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    if (!this.#result) this.#digest.dispose();
    callback(error);
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
  const digest = new ParallelDigest();
  try {
    for await (const chunk of source as AsyncIterable<Uint8Array | string>) {
      // A Readable with an encoding set yields strings, which would hash their decoded form.
      if (typeof chunk === 'string') throw new TypeError('digestStream needs a byte stream, got a string chunk.');
      await digest.update(chunk);
    }
    return await digest.finish();
  } catch (error) {
    digest.dispose();
    throw error;
  }
}

/** Digests the file at `filePath`; rejects with the fs error (for example ENOENT) when it cannot be read. */
export async function digestFile(filePath: string): Promise<DigestResult> {
  const digest = new ParallelDigest();
  try {
    await addFileBytes(digest, filePath);
    return await digest.finish();
  } catch (error) {
    digest.dispose();
    throw error;
  }
}

/**
 * Adds the first `length` bytes of the file at `filePath` to `digest`, or all of them when the file is
 * shorter (compare `digest.bytes`). An input that stays within INLINE_DIGEST_MAX_BYTES is read into one
 * small buffer. A larger one is read straight into the buffers that go to the SHA-256 worker.
 */
export async function addFileBytes(digest: ParallelDigest, filePath: string, length = Number.POSITIVE_INFINITY): Promise<void> {
  const handle = await fs.open(filePath, 'r');
  try {
    const size = Math.min(length, (await handle.stat()).size);
    let position = 0;
    const readAt = async (target: Buffer): Promise<number> => {
      const readLength = Math.min(target.byteLength, length - position);
      return readLength > 0 ? (await handle.read(target, 0, readLength, position)).bytesRead : 0;
    };

    if (digest.bytes + size <= INLINE_DIGEST_MAX_BYTES) {
      const buffer = Buffer.allocUnsafe(Math.min(DIGEST_SLICE_BYTES, INLINE_DIGEST_MAX_BYTES + 1));
      for (let bytesRead = await readAt(buffer); bytesRead > 0; bytesRead = await readAt(buffer)) {
        await digest.update(buffer.subarray(0, bytesRead));
        position += bytesRead;
      }
      return;
    }
    for (let bytesRead = await digest.updateFrom(readAt); bytesRead > 0; bytesRead = await digest.updateFrom(readAt)) {
      position += bytesRead;
    }
  } finally {
    await handle.close();
  }
}
