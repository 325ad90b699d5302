import { createReadStream } from 'node:fs';
import fs from 'node:fs/promises';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createDigestTransform, digestFile, type DigestResult } from '../digest/index';
import { getLogger } from '../logger';
import { objectKeyForBlake3, type Backend, type BlobWriter } from './backend';
import { isStorageUnavailable } from './errors';

/** Location, digests and size of stored content. */
export interface StoredBlob {
  backendId: string;
  objectKey: string;
  /** `blake3:` followed by the 64 lowercase hex characters of the BLAKE3 digest. */
  contentAddress: `blake3:${string}`;
  blake3Hex: string;
  sha256Hex: string;
  sizeBytes: number;
  /** False when identical content was already stored and the new bytes were discarded. */
  created: boolean;
}

export interface StoreStreamOptions {
  /** Maximum size in bytes; a longer source fails with PayloadTooLargeError (or the onExceed error). */
  maxBytes: number;
  onExceed?: () => Error;
  /** Aborts the write, for example when the client disconnects. */
  signal?: AbortSignal;
}

function toStoredBlob(backend: Backend, objectKey: string, digest: DigestResult, created: boolean): StoredBlob {
  return {
    backendId: backend.id,
    objectKey,
    contentAddress: `blake3:${digest.blake3Hex}`,
    blake3Hex: digest.blake3Hex,
    sha256Hex: digest.sha256Hex,
    sizeBytes: digest.sizeBytes,
    created,
  };
}

async function cancelQuietly(backend: Backend, writer: BlobWriter): Promise<void> {
  try {
    await writer.cancel();
  } catch (error) {
    getLogger().error(
      { err: error, backend_id: backend.id },
      'failed to discard a partial write; recoverTemporaryFiles will remove it',
    );
  }
}

/**
 * Streams `source` into the backend while computing its BLAKE3 and SHA-256 digests, then commits it
 * under its content address. When the source errors, is aborted, exceeds maxBytes or the backend
 * fails, the partial write is cancelled and the original error is rethrown.
 */
export async function storeStream(
  backend: Backend,
  source: Readable | AsyncIterable<Uint8Array>,
  options: StoreStreamOptions,
): Promise<StoredBlob> {
  const writer = await backend.createWriter();
  const digest = createDigestTransform({ maxBytes: options.maxBytes, onExceed: options.onExceed });
  try {
    await pipeline(source, digest, writer.stream, { signal: options.signal });
    const result = digest.result();
    const objectKey = objectKeyForBlake3(result.blake3Hex);
    const { created } = await writer.commit(objectKey);
    return toStoredBlob(backend, objectKey, result, created);
  } catch (error) {
    await cancelQuietly(backend, writer);
    // A backend that fails destroys its stream with the reason, which makes the other streams of the
    // pipeline abort. Whichever of them pipeline reports first, the backend's reason is the one to throw.
    const backendError = writer.stream.errored;
    throw isStorageUnavailable(backendError) ? backendError : error;
  }
}

/**
 * Moves a finished local file (such as a completed tus upload) into the backend under its content
 * address. The caller must make sure nothing writes to the file any more, because the digest is taken
 * before the move. The local file is gone on success, also when the content was already stored, and
 * stays in place on failure. Backends without adoptFile receive a streamed copy instead.
 */
export async function storeLocalFile(backend: Backend, localPath: string): Promise<StoredBlob> {
  if (backend.adoptFile) {
    const digest = await digestFile(localPath);
    const objectKey = objectKeyForBlake3(digest.blake3Hex);
    const { created } = await backend.adoptFile(localPath, objectKey);
    return toStoredBlob(backend, objectKey, digest, created);
  }

  const stored = await storeStream(backend, createReadStream(localPath), { maxBytes: Number.POSITIVE_INFINITY });
  await fs.unlink(localPath);
  return stored;
}
