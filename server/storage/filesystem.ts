import { createReadStream } from 'node:fs';
import fs, { type FileHandle } from 'node:fs/promises';
import path from 'node:path';
import { Readable } from 'node:stream';
import {
  assertValidObjectKey,
  isValidObjectKey,
  type Backend,
  type BackendHealth,
  type BlobWriter,
  type ByteRange,
} from './backend';
import { BlobNotFoundError, InvalidObjectKeyError, ObjectSizeMismatchError, StorageUnavailableError } from './errors';
import {
  DEFAULT_STALE_TEMPORARY_FILE_MS,
  releaseTemporaryFile,
  removeAbandonedTemporaryFiles,
  reserveTemporaryFile,
} from './filesystem-temporary-files';
import { FilesystemBlobWriter } from './filesystem-writer';
import { getLogger } from '../logger';

export interface FilesystemBackendOptions {
  id: string;
  /** Directory of the store; created on first use. */
  root: string;
  retrievalTier?: string;
  /**
   * Age of the last write after which recoverTemporaryFiles removes a temporary file of another host or
   * pid namespace (see filesystem-temporary-files.ts). Default 24 hours.
   */
  staleTemporaryFileMs?: number;
}

/** Errors that mean the file system cannot serve requests, with the wording used in StorageUnavailableError. */
const UNAVAILABLE_CODES: Record<string, string> = {
  ENOSPC: 'no space left on the file system (ENOSPC)',
  EDQUOT: 'disk quota exceeded (EDQUOT)',
  EROFS: 'the file system is read-only (EROFS)',
  EACCES: 'permission denied (EACCES)',
  EPERM: 'operation not permitted (EPERM)',
  EIO: 'input/output error (EIO)',
  EMFILE: 'too many open files in the process (EMFILE)',
  ENFILE: 'too many open files in the system (ENFILE)',
  ESTALE: 'stale network file handle (ESTALE)',
};

/**
 * Chunk size of reads longer than LARGE_READ_BYTES. Each chunk passes through the digest check and the
 * route handler's Web stream, so 1 MiB chunks cost 16 times fewer of those steps than the 64 KiB default.
 * Shorter reads keep 64 KiB chunks, so a download whose digest check fails at the end has already sent
 * its status and some bytes, and the client sees a cut body rather than a closed connection.
 */
const READ_CHUNK_BYTES = 1024 * 1024;
const LARGE_READ_BYTES = 16 * 1024 * 1024;

/** Ranges up to this many bytes are read with one pread(2) into memory instead of through a ReadStream. */
const SMALL_RANGE_BYTES = 64 * 1024;

/** link(2) codes meaning the file system has no hard links; placeFile then falls back to rename. */
const NO_HARD_LINK_CODES = new Set(['EPERM', 'ENOTSUP', 'EOPNOTSUPP', 'ENOSYS']);

const OBJECT_DIRECTORY = 'blake3';

/**
 * Returns the wording of a file system error that fails every write until an operator acts (no space,
 * read-only, permissions), or undefined for any other error.
 */
export function unavailableFileSystemReason(error: unknown): string | undefined {
  const code = errorCode(error);
  return code === undefined ? undefined : UNAVAILABLE_CODES[code];
}

function errorCode(error: unknown): string | undefined {
  return (error as NodeJS.ErrnoException | undefined)?.code;
}

async function fsyncDirectory(directory: string): Promise<void> {
  const handle = await fs.open(directory, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/**
 * Stores objects as files under one root directory:
 *
 * ```
 * <root>/
 *   blake3/                       committed objects, one file each, never modified after commit
 *     ab/
 *       cd/
 *         abcd…(64 hex)           object key 'blake3/ab/cd/abcd…'
 *   tmp/
 *     <scope>-<pid>-<token>-<random>.partial
 *                                 bytes of a writer not yet committed (see filesystem-temporary-files.ts)
 *   uploads/                      reserved for tus staging; the backend only moves files out of it (adoptFile)
 * ```
 *
 * tmp/ lives under the root so that the commit's link or rename stays on one file system. Every object
 * path is built by `pathForKey`, which accepts only keys of the grammar in backend.ts.
 */
export class FilesystemBackend implements Backend {
  readonly id: string;
  readonly kind = 'fs' as const;
  readonly retrievalTier: string;
  /** Absolute path of the store directory. */
  readonly root: string;
  /** Directory reserved for tus staging; on the same file system, so staged files can be adopted. */
  readonly uploadsDirectory: string;
  readonly #temporaryDirectory: string;
  readonly #objectRoot: string;
  readonly #staleTemporaryFileMs: number;
  /** Object directories, and the directories above them, known to exist, so commits skip their mkdir. */
  readonly #knownDirectories = new Set<string>();
  #layoutReady: Promise<void> | undefined;

  constructor(options: FilesystemBackendOptions) {
    this.id = options.id;
    this.retrievalTier = options.retrievalTier ?? 'hot';
    this.root = path.resolve(options.root);
    this.uploadsDirectory = path.join(this.root, 'uploads');
    this.#temporaryDirectory = path.join(this.root, 'tmp');
    this.#objectRoot = path.join(this.root, OBJECT_DIRECTORY);
    this.#staleTemporaryFileMs = options.staleTemporaryFileMs ?? DEFAULT_STALE_TEMPORARY_FILE_MS;
  }

  /**
   * Returns the absolute file path of an object. Throws InvalidObjectKeyError for a key outside the
   * grammar and, as a second guard, for any path that resolves outside <root>/blake3.
   */
  pathForKey(objectKey: string): string {
    assertValidObjectKey(objectKey);
    const resolved = path.resolve(this.root, ...objectKey.split('/'));
    if (!resolved.startsWith(this.#objectRoot + path.sep)) {
      throw new InvalidObjectKeyError(objectKey, 'the key resolves outside the storage root.');
    }
    return resolved;
  }

  async createWriter(): Promise<BlobWriter> {
    await this.#ensureLayout();
    const temporaryPath = reserveTemporaryFile(this.#temporaryDirectory);
    let handle: FileHandle;
    try {
      handle = await fs.open(temporaryPath, 'wx');
    } catch (error) {
      releaseTemporaryFile(temporaryPath);
      throw this.#translateError(error, 'create a temporary file');
    }
    return new FilesystemBlobWriter(handle, temporaryPath, {
      backendId: this.id,
      pathForKey: (objectKey) => this.pathForKey(objectKey),
      placeFile: (source, target) => this.#placeFile(source, target),
      translateError: (error, operation) => this.#translateError(error, operation),
    });
  }

  async adoptFile(localPath: string, objectKey: string): Promise<{ created: boolean }> {
    const target = this.pathForKey(objectKey);
    const source = path.resolve(localPath);
    await this.#ensureLayout();

    try {
      // link(2) does not follow a symbolic link, so adopting one would store the link itself.
      if (!(await fs.lstat(source)).isFile()) throw new Error(`adoptFile needs a regular file, got ${source}.`);
      // An object adopted onto itself would hit EEXIST and then be unlinked as the duplicate.
      const objectRoot = path.join(await fs.realpath(this.root), OBJECT_DIRECTORY);
      if ((await fs.realpath(source)).startsWith(objectRoot + path.sep)) {
        throw new Error(`adoptFile needs a file outside the object tree, got ${source}.`);
      }

      const handle = await fs.open(source, 'r');
      try {
        await handle.sync();
      } finally {
        await handle.close();
      }
      return await this.#placeFile(source, target);
    } catch (error) {
      if (errorCode(error) === 'EXDEV') {
        throw new Error(`adoptFile needs ${source} on the same file system as the storage root ${this.root}.`, {
          cause: error,
        });
      }
      throw this.#translateError(error, 'adopt a file');
    }
  }

  async read(objectKey: string, range?: ByteRange, expectedSizeBytes?: number): Promise<Readable> {
    const filePath = this.pathForKey(objectKey);
    let handle: FileHandle;
    try {
      handle = await fs.open(filePath, 'r');
    } catch (error) {
      const code = errorCode(error);
      if (code === 'ENOENT' || code === 'ENOTDIR') throw new BlobNotFoundError(this.id, objectKey, { cause: error });
      throw this.#translateError(error, 'open an object');
    }

    let length: number;
    try {
      const stats = await handle.stat();
      if (!stats.isFile()) throw new BlobNotFoundError(this.id, objectKey);
      if (expectedSizeBytes !== undefined && stats.size !== expectedSizeBytes) {
        throw new ObjectSizeMismatchError(this.id, objectKey, stats.size, expectedSizeBytes);
      }
      if (range) assertRangeWithin(range, stats.size);
      length = range ? range.end - range.start + 1 : stats.size;
    } catch (error) {
      await handle.close();
      throw this.#translateError(error, 'open an object');
    }

    if (range && length <= SMALL_RANGE_BYTES) return this.#readSmallRange(handle, range);
    // The stream owns the handle from here on and closes it at the end or on destroy.
    const highWaterMark = length > LARGE_READ_BYTES ? READ_CHUNK_BYTES : undefined;
    return createReadStream(filePath, { fd: handle, start: range?.start, end: range?.end, highWaterMark });
  }

  /**
   * Reads a small range with one pread(2) and closes the handle, which costs less than a ReadStream. A
   * short read yields fewer bytes, as a stream would, and the reader detects the shortfall.
   */
  async #readSmallRange(handle: FileHandle, range: ByteRange): Promise<Readable> {
    const length = range.end - range.start + 1;
    const buffer = Buffer.allocUnsafe(length);
    let bytesRead: number;
    try {
      ({ bytesRead } = await handle.read(buffer, 0, length, range.start));
    } catch (error) {
      throw this.#translateError(error, 'read an object');
    } finally {
      await handle.close();
    }
    return Readable.from([buffer.subarray(0, bytesRead)], { objectMode: false });
  }

  async stat(objectKey: string): Promise<{ sizeBytes: number; modifiedAt: Date } | null> {
    const filePath = this.pathForKey(objectKey);
    try {
      const stats = await fs.stat(filePath);
      return stats.isFile() ? { sizeBytes: stats.size, modifiedAt: stats.mtime } : null;
    } catch (error) {
      const code = errorCode(error);
      if (code === 'ENOENT' || code === 'ENOTDIR') return null;
      throw this.#translateError(error, 'stat an object');
    }
  }

  /**
   * Unlinks the object file. The directory is not fsynced, so a deleted object may come back after a
   * power loss. list() then returns it again, and an orphan sweep can remove it.
   */
  async delete(objectKey: string): Promise<void> {
    const filePath = this.pathForKey(objectKey);
    try {
      await fs.unlink(filePath);
    } catch (error) {
      const code = errorCode(error);
      if (code === 'ENOENT' || code === 'ENOTDIR') return;
      throw this.#translateError(error, 'delete an object');
    }
  }

  /** Walks <root>/blake3 and yields every file whose path is a valid object key; other files are skipped. */
  async *list(): AsyncIterable<{ objectKey: string; sizeBytes: number; modifiedAt: Date }> {
    for (const level1 of await this.#readDirectoryNames(this.#objectRoot)) {
      for (const level2 of await this.#readDirectoryNames(path.join(this.#objectRoot, level1))) {
        const leafDirectory = path.join(this.#objectRoot, level1, level2);
        for (const name of await this.#readDirectoryNames(leafDirectory)) {
          const objectKey = `${OBJECT_DIRECTORY}/${level1}/${level2}/${name}`;
          if (!isValidObjectKey(objectKey)) continue;
          const stats = await this.stat(objectKey);
          if (stats) yield { objectKey, ...stats };
        }
      }
    }
  }

  /** Checks that a file can be created and written in tmp/, and reports capacity from statfs. */
  async health(): Promise<BackendHealth> {
    let ok = true;
    let detail: string | undefined;
    try {
      await this.#ensureLayout();
      await this.#probeWrite();
    } catch (error) {
      ok = false;
      detail = `cannot write to the storage root (${errorCode(error) ?? (error as Error).message}).`;
    }

    try {
      const stats = await fs.statfs(this.root);
      return { ok, freeBytes: stats.bavail * stats.bsize, totalBytes: stats.blocks * stats.bsize, detail };
    } catch (error) {
      const statfsDetail = `statfs failed (${errorCode(error) ?? (error as Error).message}).`;
      return { ok, freeBytes: null, totalBytes: null, detail: detail ? `${detail} ${statfsDetail}` : statfsDetail };
    }
  }

  /** Removes abandoned files from tmp/ by the rules in filesystem-temporary-files.ts; safe while other processes write. */
  async recoverTemporaryFiles(): Promise<string[]> {
    return removeAbandonedTemporaryFiles(this.#temporaryDirectory, this.#staleTemporaryFileMs);
  }

  /**
   * Places `source` at `target` unless a file already exists there, then fsyncs the target directory
   * and removes `source`. A hard link is used because link(2), unlike rename(2), fails with EEXIST
   * instead of replacing the target, so exactly one of several concurrent commits reports created.
   * On file systems without hard links this falls back to a check followed by rename, where two racing
   * commits may both report created (the content is identical either way). A batch of files holds its
   * locks while its blobs are placed. So the directory is opened while the link is made, and the unlink runs
   * alongside the fsync: three thread-pool round trips one after another instead of five.
   */
  async #placeFile(source: string, target: string): Promise<{ created: boolean }> {
    const directory = path.dirname(target);
    await this.#ensureObjectDirectory(directory);

    let linked: { created: boolean; directoryHandle: FileHandle };
    try {
      linked = await this.#linkAndOpenDirectory(source, target, directory);
    } catch (error) {
      if (errorCode(error) !== 'ENOENT') throw error;
      // The directory may have been removed by another process since it was cached; create it again.
      this.#forgetDirectories(directory);
      await this.#ensureObjectDirectory(directory);
      linked = await this.#linkAndOpenDirectory(source, target, directory);
    }

    const { directoryHandle } = linked;
    const synced = directoryHandle.sync().finally(() => directoryHandle.close());
    const removed = fs.unlink(source).catch((error: unknown) => {
      if (errorCode(error) !== 'ENOENT') throw error;
    });
    const [sync, unlink] = await Promise.allSettled([synced, removed]);
    if (sync.status === 'rejected') throw sync.reason;
    if (unlink.status === 'rejected') throw unlink.reason;
    return { created: linked.created };
  }

  /** Links `source` to `target` and opens `directory` at the same time; closes the directory again if either fails. */
  async #linkAndOpenDirectory(source: string, target: string, directory: string): Promise<{ created: boolean; directoryHandle: FileHandle }> {
    const [link, open] = await Promise.allSettled([this.#linkUnlessExists(source, target), fs.open(directory, 'r')]);
    if (link.status === 'fulfilled' && open.status === 'fulfilled') return { created: link.value, directoryHandle: open.value };
    if (open.status === 'fulfilled') await open.value.close().catch(() => undefined);
    throw link.status === 'rejected' ? link.reason : (open as PromiseRejectedResult).reason;
  }

  /** Wraps fs errors that mean the storage cannot serve requests in StorageUnavailableError; returns others unchanged. */
  #translateError(error: unknown, operation: string): unknown {
    const reason = unavailableFileSystemReason(error);
    if (reason === undefined) return error;
    return new StorageUnavailableError(this.id, `failed to ${operation}: ${reason}.`, { cause: error });
  }

  async #linkUnlessExists(source: string, target: string): Promise<boolean> {
    try {
      await fs.link(source, target);
      return true;
    } catch (error) {
      const code = errorCode(error);
      if (code === 'EEXIST') return false;
      if (code === undefined || !NO_HARD_LINK_CODES.has(code)) throw error;
    }

    try {
      await fs.lstat(target);
      return false;
    } catch (error) {
      if (errorCode(error) !== 'ENOENT') throw error;
    }
    await fs.rename(source, target);
    return true;
  }

  /**
   * Creates the missing directories between <root> and `directory`, fsyncing the parent of each one not yet known.
   * Every level is remembered once it exists, so a new object directory below a known one costs one
   * mkdir, not a failing mkdir (EEXIST) for each level above it.
   */
  async #ensureObjectDirectory(directory: string): Promise<void> {
    if (this.#knownDirectories.has(directory)) return;
    try {
      await this.#createDirectories(directory);
    } catch (error) {
      if (errorCode(error) !== 'ENOENT') throw error;
      // A directory above it was removed by another process since it was cached, so start from the root.
      this.#forgetDirectories(directory);
      await this.#createDirectories(directory);
    }
  }

  async #createDirectories(directory: string): Promise<void> {
    const segments = path.relative(this.root, directory).split(path.sep);
    let current = this.root;
    for (const segment of segments) {
      const parent = current;
      current = path.join(current, segment);
      if (this.#knownDirectories.has(current)) continue;
      try {
        await fs.mkdir(current);
      } catch (error) {
        if (errorCode(error) !== 'EEXIST') throw error;
      }
      // The parent is fsynced on EEXIST too, because the writer that made the directory (in this process or
      // another) may not have fsynced it yet, and a file placed below is durable only once every entry above it is.
      await fsyncDirectory(parent);
      this.#knownDirectories.add(current);
    }
  }

  /** Removes `directory` and every directory above it up to <root> from the cache of existing ones. */
  #forgetDirectories(directory: string): void {
    for (let current = directory; current.startsWith(this.root + path.sep); current = path.dirname(current)) {
      this.#knownDirectories.delete(current);
    }
  }

  async #ensureLayout(): Promise<void> {
    this.#layoutReady ??= this.#createLayout().catch((error: unknown) => {
      this.#layoutReady = undefined;
      throw this.#translateError(error, 'create the storage directories');
    });
    return this.#layoutReady;
  }

  /**
   * Creates the root and tmp/. When mkdir makes the root, or directories above it, each one's entry in
   * its parent is fsynced, so a crash cannot take the root away from the objects placed below it. The
   * placements fsync the directories below the root.
   */
  async #createLayout(): Promise<void> {
    const firstCreated = await fs.mkdir(this.root, { recursive: true });
    if (firstCreated !== undefined) {
      for (let directory = this.root; ; directory = path.dirname(directory)) {
        await this.#fsyncParentOfCreated(directory);
        if (directory === path.resolve(firstCreated) || directory === path.dirname(directory)) break;
      }
    }
    await fs.mkdir(this.#temporaryDirectory, { recursive: true });
  }

  /** Fsyncs the parent of a directory that this process created; a parent it may not read is logged and skipped. */
  async #fsyncParentOfCreated(directory: string): Promise<void> {
    try {
      await fsyncDirectory(path.dirname(directory));
    } catch (error) {
      const code = errorCode(error);
      if (code !== 'EACCES' && code !== 'EPERM') throw error;
      getLogger().warn(
        { err: error, backend_id: this.id, path: path.dirname(directory) },
        'cannot open the parent of a new storage directory to fsync it; a crash soon after may lose the directory',
      );
    }
  }

  async #probeWrite(): Promise<void> {
    const probePath = reserveTemporaryFile(this.#temporaryDirectory);
    try {
      await fs.writeFile(probePath, 'health probe\n', { flag: 'wx' });
      await fs.unlink(probePath);
    } finally {
      releaseTemporaryFile(probePath);
    }
  }

  /** Returns the names of entries in `directory`, or none when it does not exist. */
  async #readDirectoryNames(directory: string): Promise<string[]> {
    try {
      return await fs.readdir(directory);
    } catch (error) {
      const code = errorCode(error);
      if (code === 'ENOENT' || code === 'ENOTDIR') return [];
      throw this.#translateError(error, 'list objects');
    }
  }
}

function assertRangeWithin(range: ByteRange, sizeBytes: number): void {
  const { start, end } = range;
  if (!Number.isSafeInteger(start) || !Number.isSafeInteger(end) || start < 0 || end < start || end >= sizeBytes) {
    throw new RangeError(`Byte range ${start}-${end} is invalid for an object of ${sizeBytes} bytes.`);
  }
}
