import fs, { type FileHandle } from 'node:fs/promises';
import { Writable } from 'node:stream';
import { finished } from 'node:stream/promises';
import { getLogger } from '../logger';
import { releaseTemporaryFile } from './filesystem-temporary-files';
import { BlobWriterLifecycle } from './writer-lifecycle';

const WRITE_HIGH_WATER_MARK = 256 * 1024;

function errorCode(error: unknown): string | undefined {
  return (error as NodeJS.ErrnoException | undefined)?.code;
}

/**
 * Writes every byte of each chunk to the temporary file, retrying short writes, and runs `finish` (fsync and
 * close, which translates its own errors) before it emits 'finish'.
 */
class TemporaryFileStream extends Writable {
  readonly #handle: FileHandle;
  readonly #translateError: (error: unknown) => unknown;
  readonly #finish: () => Promise<void>;

  constructor(handle: FileHandle, translateError: (error: unknown) => unknown, finish: () => Promise<void>) {
    super({ highWaterMark: WRITE_HIGH_WATER_MARK });
    this.#handle = handle;
    this.#translateError = translateError;
    this.#finish = finish;
  }

  override _final(callback: (error?: Error | null) => void): void {
    this.#finish().then(
      () => callback(),
      (error: unknown) => callback(error as Error),
    );
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    this.#writeAll(chunk).then(
      () => callback(),
      (error: unknown) => callback(this.#translateError(error) as Error),
    );
  }

  /** Writes the chunks that queued up while the previous write ran with one writev(2), so one thread-pool job. */
  override _writev(chunks: { chunk: Buffer }[], callback: (error?: Error | null) => void): void {
    this.#writeAllOf(chunks.map(({ chunk }) => chunk)).then(
      () => callback(),
      (error: unknown) => callback(this.#translateError(error) as Error),
    );
  }

  async #writeAllOf(buffers: Buffer[]): Promise<void> {
    let { bytesWritten: skipped } = await this.#handle.writev(buffers);
    // writev may write fewer bytes than given (libuv splits calls past IOV_MAX and stops at an error), so the rest goes chunk by chunk.
    for (const buffer of buffers) {
      if (skipped >= buffer.byteLength) {
        skipped -= buffer.byteLength;
        continue;
      }
      await this.#writeAll(buffer.subarray(skipped));
      skipped = 0;
    }
  }

  async #writeAll(chunk: Buffer): Promise<void> {
    let offset = 0;
    while (offset < chunk.byteLength) {
      const { bytesWritten } = await this.#handle.write(chunk, offset, chunk.byteLength - offset);
      offset += bytesWritten;
    }
  }
}

/** What a writer needs from its backend, passed in so the backend's helpers stay private. */
export interface WriterContext {
  backendId: string;
  pathForKey(objectKey: string): string;
  placeFile(source: string, target: string): Promise<{ created: boolean }>;
  translateError(error: unknown, operation: string): unknown;
}

/**
 * The end of the stream makes the bytes durable (fsync) and closes the file, so a caller that ends the
 * stream before it takes its locks waits for the fsync without them. commit then links the file into place.
 */
export class FilesystemBlobWriter extends BlobWriterLifecycle {
  readonly stream: Writable;
  readonly #handle: FileHandle;
  readonly #temporaryPath: string;
  readonly #context: WriterContext;
  #handleClosed = false;

  constructor(handle: FileHandle, temporaryPath: string, context: WriterContext) {
    super();
    this.#handle = handle;
    this.#temporaryPath = temporaryPath;
    this.#context = context;
    this.stream = new TemporaryFileStream(handle, (error) => context.translateError(error, 'write'), async () => {
      try {
        await handle.sync();
        await this.#closeHandle();
      } catch (error) {
        throw context.translateError(error, 'fsync and close a temporary file');
      }
    });
  }

  protected override async commitBytes(objectKey: string): Promise<{ created: boolean }> {
    try {
      const target = this.#context.pathForKey(objectKey);
      // The stream's end ran the fsync and the close.
      await finished(this.stream);
      const result = await this.#context.placeFile(this.#temporaryPath, target);
      this.state = 'committed';
      releaseTemporaryFile(this.#temporaryPath);
      return result;
    } catch (error) {
      try {
        await this.discard();
      } catch (discardError) {
        getLogger().warn(
          { err: discardError, backend_id: this.#context.backendId, path: this.#temporaryPath },
          'failed to remove a temporary file after a failed commit; recoverTemporaryFiles will remove it',
        );
      }
      throw this.#context.translateError(error, 'commit an object');
    }
  }

  protected override async discardBytes(): Promise<void> {
    this.state = 'discarded';
    this.stream.destroy();
    try {
      await this.#closeHandle();
    } catch (error) {
      // The bytes are being thrown away, so a failed close only matters for the log.
      getLogger().warn(
        { err: error, backend_id: this.#context.backendId, path: this.#temporaryPath },
        'failed to close a discarded temporary file',
      );
    }

    try {
      await fs.unlink(this.#temporaryPath);
    } catch (error) {
      if (errorCode(error) !== 'ENOENT') throw this.#context.translateError(error, 'discard a temporary file');
    } finally {
      // Released even when unlink failed, so that recoverTemporaryFiles removes the file later.
      releaseTemporaryFile(this.#temporaryPath);
    }
  }

  async #closeHandle(): Promise<void> {
    if (this.#handleClosed) return;
    this.#handleClosed = true;
    await this.#handle.close();
  }
}
