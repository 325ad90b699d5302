import { Transform, pipeline, type Readable, type TransformCallback } from 'node:stream';
import { Blake3Hasher } from '@napi-rs/blake-hash';

export interface ExpectedDigest {
  blake3Hex: string;
  sizeBytes: number;
}

/** Raised when streamed bytes end with a size or BLAKE3 digest other than the expected one. */
export class ContentMismatchError extends Error {
  override name = 'ContentMismatchError';
}

/**
 * Pass-through stream that hashes every byte and holds back the latest chunk until the next one arrives.
 * At the end it compares size and BLAKE3 with the expected values and releases the held chunk only when
 * they match, so a consumer of bad bytes sees the stream error before its last byte, never a complete
 * body.
 */
class VerifyingTransform extends Transform {
  readonly #hasher = new Blake3Hasher();
  readonly #expected: ExpectedDigest;
  readonly #onMismatch: (error: ContentMismatchError) => void;
  #held: Buffer | null = null;
  #sizeBytes = 0;

  constructor(expected: ExpectedDigest, onMismatch: (error: ContentMismatchError) => void) {
    super();
    this.#expected = expected;
    this.#onMismatch = onMismatch;
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    this.#hasher.update(chunk);
    this.#sizeBytes += chunk.byteLength;
    const previous = this.#held;
    this.#held = chunk;
    callback(null, previous ?? undefined);
  }

  override _flush(callback: TransformCallback): void {
    const blake3Hex = this.#hasher.digest('hex');
    if (this.#sizeBytes !== this.#expected.sizeBytes || blake3Hex !== this.#expected.blake3Hex) {
      const error = new ContentMismatchError(
        `Stored bytes do not match their digest: read ${this.#sizeBytes} bytes with BLAKE3 ${blake3Hex}, expected ${this.#expected.sizeBytes} bytes with BLAKE3 ${this.#expected.blake3Hex}.`,
      );
      this.#onMismatch(error);
      callback(error);
      return;
    }
    callback(null, this.#held ?? undefined);
  }
}

/**
 * Wraps a stream of a whole stored object so that it errors instead of completing when its bytes do not
 * match `expected`. `onMismatch` runs once in that case. Destroying the result destroys the source.
 */
export function verifyWhileStreaming(source: Readable, expected: ExpectedDigest, onMismatch: (error: ContentMismatchError) => void): Readable {
  const verifier = new VerifyingTransform(expected, onMismatch);
  // pipeline forwards errors and destruction in both directions; the callback only absorbs them.
  return pipeline(source, verifier, () => undefined);
}
