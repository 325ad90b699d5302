import { Transform, type TransformCallback } from 'node:stream';
import type { S3Client } from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import { getLogger } from '../logger';
import { assertValidObjectKey } from './backend';
import { BlobWriterLifecycle } from './writer-lifecycle';

/** Passes chunks through unchanged and counts their bytes. */
class CountingStream extends Transform {
  bytes = 0;

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    this.bytes += chunk.byteLength;
    callback(null, chunk);
  }

  /**
   * The upload reads the stream with `for await` and stops reading when a request fails. Node's default
   * iterator then destroys the stream with an AbortError, which the caller's pipeline would report in place
   * of the upload's error. This iterator leaves the stream open, and the upload's error handler destroys it.
   * NOTE: readable.iterator() is marked experimental in the Node.js 20 docs.
   */
  override [Symbol.asyncIterator](): NodeJS.AsyncIterator<Buffer> {
    return this.iterator({ destroyOnReturn: false });
  }
}

/** Dependencies of a writer on its backend, passed in so the backend's helpers stay private. */
export interface S3WriterContext {
  backendId: string;
  client: S3Client;
  bucket: string;
  partSizeBytes: number;
  /** Number of parts uploaded at once. Each part keeps up to partSizeBytes in memory. */
  queueSize: number;
  /** Returns true when an object exists at objectKey. */
  exists(objectKey: string): Promise<boolean>;
  /** Copies the object at sourceKey (of sizeBytes) to targetKey on the server. */
  copy(sourceKey: string, targetKey: string, sizeBytes: number): Promise<void>;
  /** Deletes the object at key; a missing object is not an error. */
  deleteKey(key: string): Promise<void>;
  translateError(error: unknown, operation: string): unknown;
}

/**
 * Streams the bytes to a temporary key with a multipart upload (a single PUT when they fit in one part),
 * then commit copies them on the server to the content-addressed key and deletes the temporary key.
 */
export class S3BlobWriter extends BlobWriterLifecycle {
  readonly stream: CountingStream;
  readonly #temporaryKey: string;
  readonly #context: S3WriterContext;
  readonly #uploaded: Promise<void>;

  /** Creates a writer and starts its upload, which sends each part as the stream fills it. */
  static start(temporaryKey: string, context: S3WriterContext): S3BlobWriter {
    const stream = new CountingStream();
    const upload = new Upload({
      client: context.client,
      params: { Bucket: context.bucket, Key: temporaryKey, Body: stream },
      partSize: context.partSizeBytes,
      queueSize: context.queueSize,
      // Parts of a failed upload are removed by AbortMultipartUpload before done() rejects.
      leavePartsOnError: false,
    });
    const uploaded = upload.done().then(
      () => undefined,
      (error: unknown) => {
        const translated = context.translateError(error, 'upload an object');
        // Without this, a caller still writing would wait forever on a stream that no reader consumes.
        // Once the writes have finished, no caller listens for 'error' any more, and an 'error' event
        // without a listener would crash the process. Commit then reports the error.
        if (!stream.destroyed && !stream.writableFinished) stream.destroy(translated as Error);
        throw translated;
      },
    );
    // Commit or cancel observes the rejection. Until then this handler keeps it from counting as unhandled.
    uploaded.catch(() => undefined);
    return new S3BlobWriter(temporaryKey, context, stream, uploaded);
  }

  private constructor(temporaryKey: string, context: S3WriterContext, stream: CountingStream, uploaded: Promise<void>) {
    super();
    this.#temporaryKey = temporaryKey;
    this.#context = context;
    this.stream = stream;
    this.#uploaded = uploaded;
  }

  protected override async commitBytes(objectKey: string): Promise<{ created: boolean }> {
    try {
      assertValidObjectKey(objectKey);
      await this.#uploaded;

      // NOTE: the check and the copy are two requests, so two writers committing the same content at
      // once may both copy and both report created. The bytes are identical either way.
      const existed = await this.#context.exists(objectKey);
      if (!existed) await this.#context.copy(this.#temporaryKey, objectKey, this.stream.bytes);
      this.state = 'committed';
      await this.#deleteTemporaryKeyQuietly();
      return { created: !existed };
    } catch (error) {
      try {
        await this.discard();
      } catch (discardError) {
        getLogger().warn(
          { err: discardError, backend_id: this.#context.backendId, key: this.#temporaryKey },
          'failed to remove a temporary object after a failed commit; recoverTemporaryFiles will remove it',
        );
      }
      throw error;
    }
  }

  /**
   * Ends the upload and deletes whatever reached the server. Destroying the stream makes the upload's
   * reader fail, so the library aborts a started multipart upload before done() settles. An upload that
   * had already finished left an object at the temporary key, which is deleted.
   */
  protected override async discardBytes(): Promise<void> {
    this.state = 'discarded';
    if (!this.stream.destroyed) this.stream.destroy();
    try {
      await this.#uploaded;
    } catch {
      // Expected: the upload fails because its stream was destroyed, or it had failed before.
    }
    await this.#context.deleteKey(this.#temporaryKey);
  }

  /** The object is committed at this point, so a leftover temporary key only costs space until recovery removes it. */
  async #deleteTemporaryKeyQuietly(): Promise<void> {
    try {
      await this.#context.deleteKey(this.#temporaryKey);
    } catch (error) {
      getLogger().warn(
        { err: error, backend_id: this.#context.backendId, key: this.#temporaryKey },
        'failed to delete a temporary object after commit; recoverTemporaryFiles will remove it',
      );
    }
  }
}
