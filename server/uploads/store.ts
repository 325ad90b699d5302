import { createHash } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import fs from 'node:fs/promises';
import path from 'node:path';
import { Transform, type Readable, type TransformCallback } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { and, eq, isNull } from 'drizzle-orm';
import { FileStore } from '@tus/file-store';
import { ERRORS, Upload } from '@tus/server';
import type { Database } from '@/db/client';
import { uploads } from '@/db/schema';
import { ConflictError, ServiceUnavailableError } from '../errors';
import { addFileBytes, createDigestTransform, ParallelDigest, type DigestResult } from '../digest';
import { getMetrics, type TusWriteFailure } from '../metrics/registry';
import { trackUploadInProgress } from '../metrics/uploads';
import { appendEvent } from '../registry/events';
import { recordFile } from '../registry/files';
import type { Backend } from '../storage/backend';
import { unavailableFileSystemReason } from '../storage/filesystem';
import { endUpload, findUpload, type UploadRow } from './records';
import { currentUploadRequest, uploadRequestStorage } from './request-context';

/** tus checksum extension: a PATCH whose bytes do not match its Upload-Checksum gets 460. */
export const CHECKSUM_MISMATCH = { status_code: 460, body: 'Checksum mismatch: the chunk was discarded; resend it from the same offset.\n' };
const UPLOAD_COMPLETED = { status_code: 409, body: 'The upload has finished and become a file; it can no longer be terminated.\n' };

const globalForDigests = globalThis as typeof globalThis & { artifactStoreUploadDigests?: Map<string, ParallelDigest> };

/**
 * Per-upload hash state of the bytes received so far, kept in memory by the process that received them
 * (BLAKE3 on the main thread, SHA-256 in a worker thread). Neither Blake3Hasher nor node:crypto's Hash
 * can be serialized, so after a restart, or when another process took the previous PATCH, the state is
 * rebuilt once from the staging file when the next PATCH starts.
 */
const digestStates = (globalForDigests.artifactStoreUploadDigests ??= new Map<string, ParallelDigest>());

/** Drops the hash state of an upload that ended without a file, freeing its worker state. */
export function forgetDigestState(id: string): void {
  digestStates.get(id)?.dispose();
  digestStates.delete(id);
}

export interface RegistryFileStoreOptions {
  db: Database;
  backend: Backend;
  /** Staging directory for unfinished uploads; on the backend's file system so the finished file can be renamed into it. */
  directory: string;
  expirationSeconds: number;
}

/**
 * @tus/file-store's FileStore tied to the registry. The uploads table decides whether an upload exists,
 * finished, ended or expired. Both digests are computed while bytes are written, and an Upload-Checksum
 * is verified per request. The last byte hands the staging file to the package as a file, under the tus
 * lock of the request that wrote it.
 */
export class RegistryFileStore extends FileStore {
  readonly #db: Database;
  readonly #backend: Backend;

  constructor(options: RegistryFileStoreOptions) {
    super({ directory: options.directory, expirationPeriodInMilliseconds: options.expirationSeconds * 1000 });
    this.#db = options.db;
    this.#backend = options.backend;
    this.extensions = [...this.extensions, 'checksum'];
  }

  stagingPath(id: string): string {
    return path.join(this.directory, id);
  }

  /**
   * Returns the upload's state. A finished upload is reported at its full offset, so a repeated final
   * PATCH gets 409 with that offset. An ended or expired upload throws 410 Gone, an unknown id 404.
   *
   * A PATCH that staged the last byte and then failed (the client left before the end of a chunked body,
   * the process died before the commit) leaves every byte staged and no file. tus-js-client takes a full
   * offset on HEAD as done and sends nothing more, so a HEAD records such an upload before reporting it.
   */
  override async getUpload(id: string): Promise<Upload> {
    const row = await findUpload(this.#db, id);
    if (!row) throw ERRORS.FILE_NOT_FOUND;
    if (row.completedAt) {
      const size = row.uploadLength ?? 0;
      return new Upload({ id, size, offset: size });
    }
    // tus 1.0.0: the Server SHOULD respond with 410 Gone for an upload it removed and still keeps track of.
    if (row.terminated || row.expiresAt.getTime() <= Date.now()) throw ERRORS.FILE_NO_LONGER_EXISTS;
    const upload = await super.getUpload(id);
    if (upload.size !== undefined && upload.offset === upload.size && uploadRequestStorage.getStore()?.completeStagedUpload) {
      await this.completeIfUnfinished(id);
    }
    return upload;
  }

  /** Terminates an unfinished upload: ends its row with `upload.terminated`, then deletes the staging file and its sidecar. */
  override async remove(id: string): Promise<void> {
    const row = await findUpload(this.#db, id);
    if (!row) throw ERRORS.FILE_NOT_FOUND;
    if (row.completedAt) throw UPLOAD_COMPLETED;
    const ended = await endUpload(this.#db, id, 'upload.terminated', currentUploadRequest().principal.name);
    if (!ended) throw ERRORS.FILE_NO_LONGER_EXISTS;
    getMetrics().tusUploadsAbandoned.inc({ reason: 'terminated' });
    forgetDigestState(id);
    await removeStagingFiles(this.directory, id);
  }

  /**
   * Appends the request body at `offset`, feeding the same bytes to the upload's digests and to the
   * request's Upload-Checksum. On a checksum mismatch the file is truncated back to `offset` and the
   * request fails with 460. When the write reaches the upload's length, the file is recorded in its
   * package before this returns.
   */
  override async write(readable: Readable, id: string, offset: number): Promise<number> {
    const row = await findUpload(this.#db, id);
    if (!row) throw ERRORS.FILE_NOT_FOUND;
    if (row.completedAt) return offset;

    const finishTracking = trackUploadInProgress('tus');
    try {
      return await this.#writeAndComplete(readable, row, offset);
    } finally {
      finishTracking();
    }
  }

  async #writeAndComplete(readable: Readable, row: UploadRow, offset: number): Promise<number> {
    const id = row.id;
    const metrics = getMetrics();
    const received = metrics.uploadBytesReceived.labels({ protocol: 'tus' });
    const fail = (reason: TusWriteFailure) => metrics.tusWriteFailures.inc({ reason });
    const context = currentUploadRequest();
    const digest = await this.#digestAt(id, offset);
    // The state is in flux until the write has succeeded; a failed write leaves none, so the next PATCH rebuilds it.
    digestStates.delete(id);
    const checksum = context.checksum ? createHash(context.checksum.algorithm) : undefined;
    const tap = new Transform({
      transform(chunk: Buffer, _encoding, callback: TransformCallback) {
        received.inc(chunk.byteLength);
        checksum?.update(chunk);
        digest.update(chunk).then(
          () => callback(null, chunk),
          (error: unknown) => callback(error as Error),
        );
      },
    });
    try {
      await pipeline(readable, tap, createWriteStream(this.stagingPath(id), { flags: 'r+', start: offset }));
    } catch (error) {
      digest.dispose();
      fail('write_error');
      // @tus/server's size limiter destroys the body with its own error object (413); the pipeline may
      // report a premature close instead, which would become a 500.
      const sourceError: unknown = readable.errored;
      if (sourceError && typeof sourceError === 'object' && 'status_code' in sourceError) throw sourceError;
      throw error;
    }
    const newOffset = digest.bytes;

    if (checksum && !checksum.digest().equals(context.checksum!.digest)) {
      fail('checksum_mismatch');
      digest.dispose();
      await fs.truncate(this.stagingPath(id), offset);
      context.log.warn({ upload_id: id, offset, algorithm: context.checksum!.algorithm }, 'upload chunk failed its Upload-Checksum and was discarded');
      throw CHECKSUM_MISMATCH;
    }
    // The offset this PATCH reports must survive a crash, so the chunk is flushed before the response.
    // Flushing per chunk also keeps completion from waiting for the whole file's dirty pages.
    // NOTE: the entries of the staging file and of @tus/file-store's JSON sidecar, and the sidecar's
    // bytes, are not fsynced, so a power loss can still lose an unfinished upload (a 404 on resume).
    try {
      await syncFile(this.stagingPath(id));
    } catch (error) {
      digest.dispose();
      fail('write_error');
      throw error;
    }
    // A kept state keeps no buffer, so what is left of the last slice goes to the worker now.
    digest.flush();
    digestStates.set(id, digest);

    const upload = await super.getUpload(id);
    if (upload.size !== undefined && newOffset === upload.size) {
      try {
        await this.#complete(row, await digest.finish());
      } catch (error) {
        fail('completion_error');
        throw error;
      }
    }
    return newOffset;
  }

  /** Records the upload as a file unless that already happened; used for uploads that finish without a write (length 0). */
  async completeIfUnfinished(id: string): Promise<void> {
    const row = await findUpload(this.#db, id);
    if (!row || row.completedAt || row.terminated) return;
    const upload = await super.getUpload(id);
    if (upload.size === undefined || upload.offset !== upload.size) return;
    await this.#complete(row, await (await this.#digestAt(id, upload.offset)).finish());
  }

  /**
   * Hands the staging file to the package. recordFile renames it to its content address, or commits a
   * streamed copy for a backend that cannot rename. In the same transaction the upload row is marked
   * completed with its file id and `upload.completed` is written.
   */
  async #complete(row: UploadRow, content: DigestResult): Promise<void> {
    const context = currentUploadRequest();
    const stagingPath = this.stagingPath(row.id);
    const adoptFile = this.#backend.adoptFile?.bind(this.#backend);
    const fileId = adoptFile
      ? await this.#recordUpload(row, content, (objectKey) => adoptFile(stagingPath, objectKey))
      : await this.#recordStreamedUpload(row, content, stagingPath);

    getMetrics().tusUploadsCompleted.inc();
    digestStates.delete(row.id);
    await this.configstore.delete(row.id);
    context.log.info({ upload_id: row.id, file_id: fileId, size_bytes: content.sizeBytes }, 'upload completed and recorded as a file');
  }

  /**
   * Streams the staging file into a writer of a backend that cannot rename local files (S3), checks that
   * the bytes still have the upload's digests, and records the file with a commit of that writer. The
   * transfer happens before the transaction opens, so the blob's lock is held only for the commit.
   * NOTE: the last PATCH returns only after the whole file reached the backend, which for large files
   * may take longer than a client's request timeout.
   */
  async #recordStreamedUpload(row: UploadRow, content: DigestResult, stagingPath: string): Promise<string> {
    const writer = await this.#backend.createWriter();
    let placed = false;
    let fileId: string;
    try {
      const digest = createDigestTransform();
      await pipeline(createReadStream(stagingPath), digest, writer.stream);
      const copied = digest.result();
      if (copied.blake3Hex !== content.blake3Hex || copied.sizeBytes !== content.sizeBytes) {
        throw new Error(`Staging file of upload ${row.id} changed: read ${copied.sizeBytes} bytes with BLAKE3 ${copied.blake3Hex}, expected ${content.sizeBytes} bytes with ${content.blake3Hex}.`);
      }
      fileId = await this.#recordUpload(row, content, async (objectKey) => {
        placed = true;
        return writer.commit(objectKey);
      });
    } finally {
      if (!placed) await writer.cancel();
    }
    await fs.rm(stagingPath, { force: true });
    return fileId;
  }

  /** Records the upload as a file with recordFile and returns the file id. */
  async #recordUpload(row: UploadRow, content: DigestResult, placeBlob: (objectKey: string) => Promise<unknown>): Promise<string> {
    const context = currentUploadRequest();
    const file = await recordFile(this.#db, {
      packageId: row.packageId,
      relativePath: row.relativePath,
      mediaType: row.mediaType,
      content,
      backend: this.#backend,
      actor: context.principal.name,
      placeBlob,
      eventDetails: { upload_id: row.id },
      beforeInsert: async (tx, fileId) => {
        const completed = await tx
          .update(uploads)
          .set({ completedAt: new Date(), fileId, uploadLength: content.sizeBytes, hashedOffset: content.sizeBytes })
          .where(and(eq(uploads.id, row.id), isNull(uploads.completedAt), eq(uploads.terminated, false)))
          .returning({ id: uploads.id });
        if (completed.length === 0) throw new ConflictError(`Upload ${row.id} was terminated or expired before its last byte arrived.`);
        await appendEvent(tx, {
          eventType: 'upload.completed',
          subjectKind: 'upload',
          subjectId: row.id,
          actor: context.principal.name,
          payload: { upload_id: row.id, package_id: row.packageId, file_id: fileId, relative_path: row.relativePath, size_bytes: content.sizeBytes },
        });
      },
    });
    return file.id;
  }

  /** Returns the hash state at `offset`, rebuilding it from the staging file when memory has none at that offset. */
  async #digestAt(id: string, offset: number): Promise<ParallelDigest> {
    const cached = digestStates.get(id);
    // A finished state is reused too, so a retried completion does not re-read the file.
    if (cached && !cached.failed && cached.bytes === offset) return cached;
    // A state at another offset, or one whose worker thread died, cannot continue.
    forgetDigestState(id);

    const digest = new ParallelDigest();
    if (offset > 0) {
      const started = Date.now();
      try {
        await addFileBytes(digest, this.stagingPath(id), offset);
      } catch (error) {
        digest.dispose();
        throw error;
      }
      if (digest.bytes !== offset) {
        digest.dispose();
        throw new Error(`Staging file of upload ${id} has ${digest.bytes} bytes, expected ${offset}.`);
      }
      uploadRequestStorage.getStore()?.log.info({ upload_id: id, offset, ms: Date.now() - started }, 'rebuilt upload hash state from the staging file');
    }
    return digest;
  }
}

/** Deletes an upload's staging file and its tus sidecar (`<id>.json`); missing files are not an error. */
export async function removeStagingFiles(directory: string, id: string): Promise<void> {
  for (const file of [path.join(directory, id), path.join(directory, `${id}.json`)]) {
    await fs.rm(file, { force: true });
  }
}

/**
 * Turns a staging file system error that fails every write until an operator acts (no space, read-only)
 * into a 503 that names it, instead of a bare 500. Other errors pass unchanged.
 */
export function stagingError(error: unknown): unknown {
  const reason = unavailableFileSystemReason(error);
  if (reason === undefined) return error;
  return new ServiceUnavailableError(
    `The server failed to write the upload's staging file: ${reason}. The bytes written before the failure are kept, so the upload can resume from the offset that HEAD reports once an operator has fixed the staging directory.`,
    { cause: error, title: 'Upload staging unavailable' },
  );
}

/** Flushes a file's data to disk (fdatasync). */
async function syncFile(filePath: string): Promise<void> {
  const handle = await fs.open(filePath, 'r+');
  try {
    await handle.datasync();
  } finally {
    await handle.close();
  }
}
