import { pipeline } from 'node:stream/promises';
import { eq } from 'drizzle-orm';
import type { Executor } from '@/db/client';
import { blobs, storageLocations } from '@/db/schema';
import { createDigestTransform } from '../digest';
import type { Settings } from '../settings';
import type { BackendConfig } from '../storage/backends-config';
import type { Backend } from '../storage/backend';
import { FilesystemBackend } from '../storage/filesystem';
import { S3Backend } from '../storage/s3';
import { isStorageUnavailable } from '../storage/errors';
import { getLogger } from '../logger';

export { PRIMARY_BACKEND_ID, REPLICA_BACKEND_ID, S3_PRIMARY_BACKEND_ID } from '../settings';

export interface StorageBackends {
  primary: Backend;
  /**
   * The other backends in configuration order. New blobs are copied to them, in this order, until the
   * configured number of copies exists.
   */
  copyTargets: Backend[];
  /** The number of copies of each new blob, the primary's included. */
  copies: number;
  /** Every configured backend by id, the primary first and then in configuration order. Backends beyond `copies` are read and repaired but not written. */
  all: Map<string, Backend>;
}

/** Opens every backend of the storage configuration (BACKENDS_FILE or the short-form variables). */
export function openStorageBackends(settings: Settings): StorageBackends {
  const { storage } = settings;
  const opened = storage.backends.map(openBackend);
  const primary = opened.find((backend) => backend.id === storage.primary)!;
  const copyTargets = opened.filter((backend) => backend !== primary);
  const all = new Map<string, Backend>([primary, ...copyTargets].map((backend) => [backend.id, backend]));
  return { primary, copyTargets, copies: storage.copies, all };
}

function openBackend(config: BackendConfig): Backend {
  if (config.kind === 'fs') return new FilesystemBackend({ id: config.id, root: config.root, retrievalTier: config.retrievalTier });
  return new S3Backend({
    id: config.id,
    bucket: config.bucket,
    region: config.region,
    endpoint: config.endpoint,
    forcePathStyle: config.forcePathStyle,
    credentials: config.credentials,
    partSizeBytes: config.partSizeBytes,
    connectTimeoutMs: config.connectTimeoutMs,
    socketTimeoutMs: config.socketTimeoutMs,
    retrievalTier: config.retrievalTier,
  });
}

/** The backends that receive copies of new blobs and how many copies to keep. */
interface WritePlan {
  copyTargets: Backend[];
  copies: number;
}

// Kept on globalThis because Next.js bundles route handlers separately, each with its own copy of this
// module, while the process context that configures the copies is created once.
const globalForReplicas = globalThis as typeof globalThis & { artifactStoreWritePlan?: WritePlan };

/** Sets the backends that recordFile copies new blobs to and the number of copies; called once when the process context is created. */
export function configureWriteCopies(copyTargets: Backend[], copies: number): void {
  globalForReplicas.artifactStoreWritePlan = { copyTargets: [...copyTargets], copies };
}

/** True when recordFile copies new blobs to write replicas inside its transaction. */
export function copiesNewBlobs(): boolean {
  const plan = globalForReplicas.artifactStoreWritePlan;
  return plan !== undefined && plan.copies > 1;
}

export interface ExpectedContent {
  blake3Hex: string;
  sha256Hex: string;
  sizeBytes: number;
}

/** Raised when bytes read back from a store do not match the blob's digests. */
export class CopyMismatchError extends Error {
  override name = 'CopyMismatchError';
}

/**
 * Streams the object at `objectKey` from `source` into a new writer on `target`, checking size and both
 * digests on the way, and returns the writer uncommitted (the caller commits or cancels it). Throws
 * CopyMismatchError when the source bytes are not the expected ones.
 */
export async function copyObject(source: Backend, target: Backend, objectKey: string, expected: ExpectedContent, onChunk?: (bytes: number) => Promise<void>) {
  const writer = await target.createWriter();
  try {
    const digest = createDigestTransform();
    const reader = await source.read(objectKey);
    const throttle = async function* (chunks: AsyncIterable<Buffer>) {
      for await (const chunk of chunks) {
        await onChunk?.(chunk.byteLength);
        yield chunk;
      }
    };
    await pipeline(reader, throttle, digest, writer.stream);
    const actual = digest.result();
    if (actual.blake3Hex !== expected.blake3Hex || actual.sha256Hex !== expected.sha256Hex || actual.sizeBytes !== expected.sizeBytes) {
      throw new CopyMismatchError(`The copy of ${objectKey} on ${source.id} does not match its digests (read ${actual.sizeBytes} bytes, BLAKE3 ${actual.blake3Hex}).`);
    }
    return writer;
  } catch (error) {
    await writer.cancel();
    throw error;
  }
}

/**
 * Copies a blob just placed on `source` to the configured copy targets, in order, until the blob has as
 * many location rows as the configured number of copies, and inserts one storage_locations row per new
 * copy, after the blob's row when the blob is new. A target that is unavailable is skipped for the next
 * one. When too few copies could be written, the last error is thrown, so the caller's transaction records
 * nothing. Runs inside recordFile's transaction, under the blob's advisory lock, after the primary
 * placement. Returns the number of copies written.
 */
export async function replicateNewBlob(tx: Executor, source: Backend, objectKey: string, contentAddress: string, expected: ExpectedContent): Promise<number> {
  const plan = globalForReplicas.artifactStoreWritePlan;
  if (!plan || plan.copies <= 1) return 0;
  const existing = await tx.select({ backendId: storageLocations.backendId }).from(storageLocations).where(eq(storageLocations.contentAddress, contentAddress));
  // Only copies on configured backends count; rows of a backend removed from the configuration remain in the table.
  const configured = new Set([source.id, ...plan.copyTargets.map((target) => target.id)]);
  const holders = new Set(existing.map((row) => row.backendId).filter((backendId) => configured.has(backendId)));
  holders.add(source.id);
  let lastError: unknown;
  let written = 0;

  for (const target of plan.copyTargets) {
    if (holders.size >= plan.copies) return written;
    if (holders.has(target.id)) continue;
    try {
      const writer = await copyObject(source, target, objectKey, expected);
      await writer.commit(objectKey);
    } catch (error) {
      if (!isStorageUnavailable(error)) throw error;
      getLogger().warn({ err: error, content_address: contentAddress, backend_id: target.id }, 'a copy target is unavailable; trying the next backend');
      lastError = error;
      continue;
    }
    const now = new Date();
    if (written === 0) {
      await tx
        .insert(blobs)
        .values({ contentAddress, sizeBytes: expected.sizeBytes, sha256Hex: expected.sha256Hex, createdAt: now })
        .onConflictDoNothing();
    }
    await tx
      .insert(storageLocations)
      .values({ contentAddress, backendId: target.id, objectKey, retrievalTier: target.retrievalTier, status: 'ok', verifiedAt: now, createdAt: now })
      .onConflictDoNothing();
    holders.add(target.id);
    written += 1;
  }
  if (holders.size < plan.copies && lastError !== undefined) throw lastError;
  return written;
}
