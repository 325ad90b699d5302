import { AsyncLocalStorage } from 'node:async_hooks';
import type { Logger } from 'pino';
import type { Principal } from '../registry/tokens';

/** The Upload-Checksum of one PATCH (tus checksum extension): the algorithm and the expected digest bytes. */
export interface ExpectedChecksum {
  algorithm: ChecksumAlgorithm;
  digest: Buffer;
}

export const CHECKSUM_ALGORITHMS = ['sha1', 'sha256'] as const;
export type ChecksumAlgorithm = (typeof CHECKSUM_ALGORITHMS)[number];

/** Request data that the tus hooks and the store read while @tus/server handles the request. */
export interface UploadRequestContext {
  principal: Principal;
  log: Logger;
  requestId: string;
  /** Set on creation: the target of the new upload, parsed from Upload-Metadata. */
  creation?: { packageId: string; relativePath: string; mediaType: string | null };
  checksum?: ExpectedChecksum;
  /**
   * Set on HEAD, whose getUpload runs under the upload's lock: an upload whose bytes are all staged but
   * that has no file yet is recorded before its offset is reported.
   */
  completeStagedUpload?: boolean;
  /** An error that is not a tus error, thrown inside @tus/server; the route maps it to problem+json. */
  error?: unknown;
}

const globalForContext = globalThis as typeof globalThis & {
  artifactStoreUploadContext?: AsyncLocalStorage<UploadRequestContext>;
};

/** Carries the UploadRequestContext through @tus/server into its hooks and the data store. */
export const uploadRequestStorage = (globalForContext.artifactStoreUploadContext ??= new AsyncLocalStorage<UploadRequestContext>());

/** Returns the context of the request being handled; throws outside of one. */
export function currentUploadRequest(): UploadRequestContext {
  const context = uploadRequestStorage.getStore();
  if (!context) throw new Error('No tus request is being handled in this async context.');
  return context;
}
