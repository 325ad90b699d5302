import { pipeline } from 'node:stream/promises';
import { and, eq } from 'drizzle-orm';
import type { Executor } from '@/db/client';
import { storageLocations } from '@/db/schema';
import { createDigestTransform } from '../digest';
import type { Settings } from '../settings';
import type { Backend } from '../storage/backend';
import { FilesystemBackend } from '../storage/filesystem';
import { S3Backend } from '../storage/s3';

export const PRIMARY_BACKEND_ID = 'fs-primary';
export const S3_PRIMARY_BACKEND_ID = 's3-primary';
export const REPLICA_BACKEND_ID = 'fs-replica';

export interface StorageBackends {
  primary: Backend;
  /** Backends that receive a copy of every new blob after the primary; empty unless REPLICA_COUNT is 2. */
  replicas: Backend[];
  /** Every configured backend by id, including a replica root configured with REPLICA_COUNT=1, which is then read and repaired but not written. */
  all: Map<string, Backend>;
}

/**
 * Opens the primary store (STORAGE_ROOT, or the S3 bucket when STORAGE_BACKEND is s3) and, when
 * REPLICA_STORAGE_ROOT is set, the filesystem replica store.
 */
export function openStorageBackends(settings: Settings): StorageBackends {
  const primary = openPrimaryBackend(settings);
  const all = new Map<string, Backend>([[primary.id, primary]]);
  const replicas: Backend[] = [];
  if (settings.replicaStorageRoot) {
    const replica = new FilesystemBackend({ id: REPLICA_BACKEND_ID, root: settings.replicaStorageRoot });
    all.set(replica.id, replica);
    if (settings.REPLICA_COUNT >= 2) replicas.push(replica);
  }
  return { primary, replicas, all };
}

function openPrimaryBackend(settings: Settings): Backend {
  if (settings.STORAGE_BACKEND === 'fs') return new FilesystemBackend({ id: PRIMARY_BACKEND_ID, root: settings.storageRoot });

  const { S3_ACCESS_KEY_ID: accessKeyId, S3_SECRET_ACCESS_KEY: secretAccessKey } = settings;
  return new S3Backend({
    id: S3_PRIMARY_BACKEND_ID,
    // getSettings rejects STORAGE_BACKEND=s3 without S3_BUCKET.
    bucket: settings.S3_BUCKET!,
    region: settings.S3_REGION,
    endpoint: settings.S3_ENDPOINT,
    forcePathStyle: settings.S3_FORCE_PATH_STYLE,
    credentials: accessKeyId && secretAccessKey ? { accessKeyId, secretAccessKey } : undefined,
    partSizeBytes: settings.S3_PART_SIZE_BYTES,
  });
}

// Kept on globalThis because Next.js bundles route handlers separately, each with its own copy of this
// module, while the process context that configures the replicas is created once.
const globalForReplicas = globalThis as typeof globalThis & { artifactStoreWriteReplicas?: Backend[] };

/** Sets the backends that recordFile copies every new blob to; called once when the process context is created. */
export function configureWriteReplicas(backends: Backend[]): void {
  globalForReplicas.artifactStoreWriteReplicas = [...backends];
}

export interface ExpectedContent {
  blake3Hex: string;
  sha256Hex: string;
  sizeBytes: number;
}

/** Raised when bytes read back from a store do not match the blob's digests. */
export class CopyMismatchError extends Error {}

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
 * Copies a blob just placed on `source` to every configured write replica that has no location row for
 * it yet, and inserts one storage_locations row per copy. Runs inside recordFile's transaction, under the
 * blob's advisory lock, after the primary placement. Returns the number of copies made.
 */
export async function replicateNewBlob(tx: Executor, source: Backend, objectKey: string, contentAddress: string, expected: ExpectedContent): Promise<number> {
  let copies = 0;
  for (const replica of globalForReplicas.artifactStoreWriteReplicas ?? []) {
    if (replica.id === source.id) continue;
    const existing = await tx
      .select({ backendId: storageLocations.backendId })
      .from(storageLocations)
      .where(and(eq(storageLocations.contentAddress, contentAddress), eq(storageLocations.backendId, replica.id)));
    if (existing.length > 0) continue;

    const writer = await copyObject(source, replica, objectKey, expected);
    await writer.commit(objectKey);
    const now = new Date();
    await tx
      .insert(storageLocations)
      .values({ contentAddress, backendId: replica.id, objectKey, retrievalTier: replica.retrievalTier, status: 'ok', verifiedAt: now, createdAt: now })
      .onConflictDoNothing();
    copies += 1;
  }
  return copies;
}
