import { DomainError, ServiceUnavailableError } from '../errors';

// Registered symbols, so the checks below also recognize errors of a backend that another Next.js bundle
// created, where `instanceof` fails.
const BLOB_NOT_FOUND_BRAND = Symbol.for('artifact-store.BlobNotFoundError');
const STORAGE_UNAVAILABLE_BRAND = Symbol.for('artifact-store.StorageUnavailableError');
const OBJECT_SIZE_MISMATCH_BRAND = Symbol.for('artifact-store.ObjectSizeMismatchError');

function hasBrand(error: unknown, brand: symbol): boolean {
  return typeof error === 'object' && error !== null && (error as Record<symbol, unknown>)[brand] === true;
}

/** Returns true for a BlobNotFoundError of any bundle. */
export function isBlobNotFound(error: unknown): error is BlobNotFoundError {
  return hasBrand(error, BLOB_NOT_FOUND_BRAND);
}

/** Returns true for a StorageUnavailableError of any bundle. */
export function isStorageUnavailable(error: unknown): error is StorageUnavailableError {
  return hasBrand(error, STORAGE_UNAVAILABLE_BRAND);
}

/** Returns true for an ObjectSizeMismatchError of any bundle. */
export function isObjectSizeMismatch(error: unknown): error is ObjectSizeMismatchError {
  return hasBrand(error, OBJECT_SIZE_MISMATCH_BRAND);
}

/**
 * A stored object whose size differs from the size recorded for its blob, found when it was opened and
 * before any byte was read: the copy is damaged (truncated or overwritten).
 */
export class ObjectSizeMismatchError extends Error {
  override name = 'ObjectSizeMismatchError';
  readonly [OBJECT_SIZE_MISMATCH_BRAND] = true;

  constructor(
    readonly backendId: string,
    readonly objectKey: string,
    readonly sizeBytes: number,
    readonly expectedSizeBytes: number,
  ) {
    super(`The stored object ${objectKey} on storage backend "${backendId}" has ${sizeBytes} bytes instead of ${expectedSizeBytes}.`);
  }
}

/**
 * A stored object that a database row points to is missing from its backend. The client sent nothing
 * wrong, so this is a server-side fault (500), not a 404.
 */
export class BlobNotFoundError extends DomainError {
  override name = 'BlobNotFoundError';
  readonly [BLOB_NOT_FOUND_BRAND] = true;
  readonly backendId: string;
  readonly objectKey: string;

  constructor(backendId: string, objectKey: string, options?: { cause?: unknown }) {
    super(
      500,
      'Stored content missing',
      `The stored object ${objectKey} is missing from storage backend "${backendId}".`,
      {},
      {},
      options,
    );
    this.backendId = backendId;
    this.objectKey = objectKey;
  }
}

/**
 * A storage backend cannot serve requests right now (disk full, read-only, permission or I/O error).
 * The detail names the backend and the error code but never a file path; the cause carries the rest.
 */
export class StorageUnavailableError extends ServiceUnavailableError {
  override name = 'StorageUnavailableError';
  readonly [STORAGE_UNAVAILABLE_BRAND] = true;
  readonly backendId: string;

  constructor(backendId: string, detail: string, options?: { cause?: unknown }) {
    super(`Storage backend "${backendId}" is unavailable: ${detail}`, {
      ...options,
      title: 'Storage backend unavailable',
      fields: { backend_id: backendId },
    });
    this.backendId = backendId;
  }
}

/**
 * An object key that does not match the key grammar. Keys are built by the server, never taken from a
 * request, so this is a programming error and deliberately not a DomainError: it becomes a bare 500.
 */
export class InvalidObjectKeyError extends Error {
  override name = 'InvalidObjectKeyError';
  readonly objectKey: string;

  constructor(objectKey: string, reason: string) {
    super(`Invalid object key ${JSON.stringify(objectKey)}: ${reason}`);
    this.objectKey = objectKey;
  }
}
