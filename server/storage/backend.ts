import type { Readable, Writable } from 'node:stream';
import { InvalidObjectKeyError } from './errors';

export { BlobNotFoundError, InvalidObjectKeyError, ObjectSizeMismatchError, StorageUnavailableError } from './errors';

/** Byte range with an inclusive end, as in an HTTP Range header: { start: 0, end: 0 } is the first byte. */
export interface ByteRange {
  start: number;
  end: number;
}

export interface BackendHealth {
  ok: boolean;
  freeBytes: number | null;
  totalBytes: number | null;
  detail?: string;
}

export interface BlobWriter {
  /** Receives the bytes. */
  readonly stream: Writable;
  /**
   * Waits for the stream to finish, makes the bytes durable (fsync) and atomically places them at
   * objectKey (in the filesystem backend by link or rename, then fsync of the directory). The filesystem
   * backend fsyncs when the stream ends, so a caller that awaits the end before it takes a lock keeps the
   * fsync out of the lock. If an object already exists at objectKey, the new
   * bytes are discarded (identical content is stored once) and `created` is false. The caller must end
   * the stream; commit does not end it. On failure the written bytes are discarded.
   */
  commit(objectKey: string): Promise<{ created: boolean }>;
  /** Discards everything written; safe to call twice or after a failed commit, and a no-op after a successful one. */
  cancel(): Promise<void>;
}

export interface Backend {
  readonly id: string;
  readonly kind: 'fs' | 's3';
  readonly retrievalTier: string;
  createWriter(): Promise<BlobWriter>;
  /**
   * Moves an existing local file (same file system) into objectKey by rename, fsyncing as commit does.
   * The local file is gone afterwards, also when an object already existed (`created: false`). Optional:
   * backends that cannot rename omit it.
   */
  adoptFile?(localPath: string, objectKey: string): Promise<{ created: boolean }>;
  /**
   * Opens the object, or the inclusive range of it. Throws BlobNotFoundError when it does not exist, and
   * ObjectSizeMismatchError before any byte is read when `expectedSizeBytes` is given and the object has
   * another size. The S3 backend cannot check a whole read whose response has no Content-Length.
   */
  read(objectKey: string, range?: ByteRange, expectedSizeBytes?: number): Promise<Readable>;
  /** Returns null when the object does not exist. */
  stat(objectKey: string): Promise<{ sizeBytes: number; modifiedAt: Date } | null>;
  /** Deletes the object; a missing object is not an error. */
  delete(objectKey: string): Promise<void>;
  /** Lists committed objects, never partial writes; used by orphan sweeps. */
  list?(): AsyncIterable<{ objectKey: string; sizeBytes: number; modifiedAt: Date }>;
  /** Reports capacity and whether the backend accepts writes. Failures are reported as `ok: false`, not thrown. */
  health(): Promise<BackendHealth>;
  /** Removes temporary files left by a crashed process; returns the paths removed (caller logs them). */
  recoverTemporaryFiles(): Promise<string[]>;
}

const BLAKE3_HEX_PATTERN = /^[0-9a-f]{64}$/;

/**
 * The key grammar: every stored object is content-addressed, so a key is `blake3/<h0h1>/<h2h3>/<h>` where
 * h is the 64-character lowercase hex BLAKE3 digest and the two directory levels are its first four
 * characters. No other key is valid, which also rules out `..`, absolute paths, backslashes and NUL.
 */
const OBJECT_KEY_PATTERN = /^blake3\/([0-9a-f]{2})\/([0-9a-f]{2})\/([0-9a-f]{64})$/;

/** Builds the object key of a BLAKE3 digest, e.g. 'blake3/ab/cd/abcd…'; throws InvalidObjectKeyError on bad hex. */
export function objectKeyForBlake3(hex: string): string {
  if (!BLAKE3_HEX_PATTERN.test(hex)) {
    throw new InvalidObjectKeyError(hex, 'a BLAKE3 digest must be 64 lowercase hex characters.');
  }
  return `blake3/${hex.slice(0, 2)}/${hex.slice(2, 4)}/${hex}`;
}

/** Returns true when `key` matches the key grammar, including directory levels that agree with the digest. */
export function isValidObjectKey(key: string): boolean {
  const match = OBJECT_KEY_PATTERN.exec(key);
  if (!match) return false;
  const [, level1, level2, hex] = match;
  return hex.startsWith(level1 + level2);
}

/** Throws InvalidObjectKeyError unless `key` matches the key grammar. */
export function assertValidObjectKey(key: string): void {
  if (!isValidObjectKey(key)) {
    throw new InvalidObjectKeyError(key, 'expected blake3/<2 hex>/<2 hex>/<64 lowercase hex> built by objectKeyForBlake3.');
  }
}
