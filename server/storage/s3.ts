import { randomUUID } from 'node:crypto';
import type { Readable } from 'node:stream';
import {
  AbortMultipartUploadCommand,
  CompleteMultipartUploadCommand,
  CopyObjectCommand,
  CreateMultipartUploadCommand,
  DeleteObjectCommand,
  GetObjectCommand,
  HeadBucketCommand,
  HeadObjectCommand,
  ListMultipartUploadsCommand,
  ListObjectsV2Command,
  S3Client,
  S3ServiceException,
  UploadPartCopyCommand,
  type CompletedPart,
} from '@aws-sdk/client-s3';
import { assertValidObjectKey, isValidObjectKey, type Backend, type BackendHealth, type BlobWriter, type ByteRange } from './backend';
import { BlobNotFoundError, InvalidObjectKeyError, ObjectSizeMismatchError, StorageUnavailableError } from './errors';
import { getLogger } from '../logger';
import { DEFAULT_S3_CONNECT_TIMEOUT_MS, DEFAULT_S3_PART_SIZE_BYTES, DEFAULT_S3_SOCKET_TIMEOUT_MS, MIN_S3_PART_SIZE_BYTES } from './backends-config';
import { S3BlobWriter } from './s3-writer';

/** S3's smallest part of a multipart upload, except the last one. */
export const MIN_PART_SIZE_BYTES = MIN_S3_PART_SIZE_BYTES;
export const DEFAULT_PART_SIZE_BYTES = DEFAULT_S3_PART_SIZE_BYTES;
/** S3's maximum object size for one CopyObject request. Larger objects are copied part by part. */
const MAX_SINGLE_COPY_BYTES = 5 * 1024 ** 3;
const COPY_PART_SIZE_BYTES = 1024 ** 3;
const DEFAULT_QUEUE_SIZE = 2;
// Below the 3 s that GET /health allows each backend, so a hung service shows its own timeout detail.
const DEFAULT_HEALTH_TIMEOUT_MS = 2_500;
const DEFAULT_STALE_TEMPORARY_OBJECT_MS = 24 * 3600 * 1000;

const OBJECT_PREFIX = 'blake3/';
const TEMPORARY_PREFIX = 'tmp/';

/** Node.js network error codes that mean the S3 endpoint cannot be reached. */
const NETWORK_ERROR_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'EHOSTUNREACH', 'ENETUNREACH', 'ENOTFOUND', 'EAI_AGAIN', 'ETIMEDOUT', 'EPIPE']);

export interface S3BackendOptions {
  id: string;
  bucket: string;
  region: string;
  /** URL of an S3-compatible service, e.g. http://127.0.0.1:8080. When unset, the AWS endpoint of the region. */
  endpoint?: string;
  /** Addresses the bucket in the path (endpoint/bucket/key) instead of the host name, as most non-AWS services need. */
  forcePathStyle?: boolean;
  /** Access key pair. When unset, the SDK's default chain (environment, profile, instance role) supplies it. */
  credentials?: { accessKeyId: string; secretAccessKey: string };
  /** Size of one multipart upload part, at least 5 MiB. An object has at most 10,000 parts. Default 8 MiB. */
  partSizeBytes?: number;
  /**
   * Parts uploaded at once per writer. A writer holds up to about (queueSize + 1) × partSizeBytes in
   * memory: the parts in flight and the one being filled. Default 2.
   */
  queueSize?: number;
  retrievalTier?: string;
  /** Time limit of opening a connection to the endpoint. Default 3 s. */
  connectTimeoutMs?: number;
  /** Time a request may go without sending or receiving a byte before it fails. Default 30 s. */
  socketTimeoutMs?: number;
  /** Time limit of the request health() sends. Default 2.5 s. */
  healthTimeoutMs?: number;
  /** Age after which recoverTemporaryFiles removes a temporary object or multipart upload. Default 24 hours. */
  staleTemporaryObjectMs?: number;
  /** Objects larger than this are copied with UploadPartCopy instead of CopyObject. Default 5 GiB, S3's limit. */
  maxSingleCopyBytes?: number;
  /** Part size of UploadPartCopy copies. Default 1 GiB. */
  copyPartSizeBytes?: number;
}

/**
 * Stores objects in one bucket of an S3-compatible service:
 *
 * ```
 * <bucket>/
 *   blake3/ab/cd/abcd…(64 hex)   committed objects, key 'blake3/ab/cd/abcd…', never modified after commit
 *   tmp/<ms since epoch>-<uuid>  bytes of a writer not yet committed, and multipart uploads to such keys
 * ```
 *
 * A writer uploads to a tmp/ key; commit copies it on the server to the content address and deletes it.
 * The bucket must exist. Every object key is checked against the key grammar in backend.ts.
 */
export class S3Backend implements Backend {
  readonly id: string;
  readonly kind = 's3' as const;
  readonly retrievalTier: string;
  readonly bucket: string;
  readonly #client: S3Client;
  readonly #partSizeBytes: number;
  readonly #queueSize: number;
  readonly #healthTimeoutMs: number;
  readonly #staleTemporaryObjectMs: number;
  readonly #maxSingleCopyBytes: number;
  readonly #copyPartSizeBytes: number;

  constructor(options: S3BackendOptions) {
    this.id = options.id;
    this.bucket = options.bucket;
    this.retrievalTier = options.retrievalTier ?? 'hot';
    this.#partSizeBytes = options.partSizeBytes ?? DEFAULT_PART_SIZE_BYTES;
    if (this.#partSizeBytes < MIN_PART_SIZE_BYTES) {
      throw new Error(`S3 part size ${this.#partSizeBytes} is below the minimum of ${MIN_PART_SIZE_BYTES} bytes (5 MiB).`);
    }
    this.#queueSize = options.queueSize ?? DEFAULT_QUEUE_SIZE;
    this.#healthTimeoutMs = options.healthTimeoutMs ?? DEFAULT_HEALTH_TIMEOUT_MS;
    this.#staleTemporaryObjectMs = options.staleTemporaryObjectMs ?? DEFAULT_STALE_TEMPORARY_OBJECT_MS;
    this.#maxSingleCopyBytes = options.maxSingleCopyBytes ?? MAX_SINGLE_COPY_BYTES;
    this.#copyPartSizeBytes = options.copyPartSizeBytes ?? COPY_PART_SIZE_BYTES;
    this.#client = new S3Client({
      region: options.region,
      endpoint: options.endpoint,
      forcePathStyle: options.forcePathStyle ?? false,
      credentials: options.credentials,
      // Checksums only where S3 requires them: with the SDK's default, uploads use aws-chunked
      // encoding with trailing checksums, which S3-compatible services such as Swift's s3api (2.30)
      // reject with 501. The content is verified by its BLAKE3 and SHA-256 digests instead.
      requestChecksumCalculation: 'WHEN_REQUIRED',
      responseChecksumValidation: 'WHEN_REQUIRED',
      // Without limits the SDK waits for an unreachable endpoint as long as the operating system does
      // (minutes for a host that drops packets). An idle limit rather than a total one, so a large part
      // on a slow link still completes.
      requestHandler: {
        connectionTimeout: options.connectTimeoutMs ?? DEFAULT_S3_CONNECT_TIMEOUT_MS,
        socketTimeout: options.socketTimeoutMs ?? DEFAULT_S3_SOCKET_TIMEOUT_MS,
      },
    });
  }

  async createWriter(): Promise<BlobWriter> {
    const temporaryKey = `${TEMPORARY_PREFIX}${Date.now()}-${randomUUID()}`;
    return S3BlobWriter.start(temporaryKey, {
      backendId: this.id,
      client: this.#client,
      bucket: this.bucket,
      partSizeBytes: this.#partSizeBytes,
      queueSize: this.#queueSize,
      exists: async (objectKey) => (await this.stat(objectKey)) !== null,
      copy: (sourceKey, targetKey, sizeBytes) => this.#copyObject(sourceKey, targetKey, sizeBytes),
      deleteKey: (key) => this.#deleteKey(key),
      translateError: (error, operation) => this.#translateError(error, operation),
    });
  }

  /**
   * Opens the object with GetObject, or the inclusive range of it with a Range header. Throws RangeError
   * for a range that does not lie within the object, like the filesystem backend. The object's size comes
   * from Content-Length, or from Content-Range for a range. A whole read without Content-Length is not
   * checked against `expectedSizeBytes`.
   */
  async read(objectKey: string, range?: ByteRange, expectedSizeBytes?: number): Promise<Readable> {
    assertValidObjectKey(objectKey);
    if (range && (!Number.isSafeInteger(range.start) || !Number.isSafeInteger(range.end) || range.start < 0 || range.end < range.start)) {
      throw new RangeError(`Byte range ${range.start}-${range.end} is invalid.`);
    }

    let response;
    try {
      response = await this.#client.send(
        new GetObjectCommand({ Bucket: this.bucket, Key: objectKey, Range: range ? `bytes=${range.start}-${range.end}` : undefined }),
      );
    } catch (error) {
      if (httpStatus(error) === 404 && errorName(error) !== 'NoSuchBucket') throw new BlobNotFoundError(this.id, objectKey, { cause: error });
      if (httpStatus(error) === 416 && range) throw new RangeError(`Byte range ${range.start}-${range.end} starts past the end of ${objectKey}.`);
      throw this.#translateError(error, 'read an object');
    }

    const body = response.Body as Readable;
    // S3 shortens a range whose end lies past the object; Content-Range ("bytes 5-9/10") gives the size.
    const sizeBytes = range ? Number(/\/(\d+)$/.exec(response.ContentRange ?? '')?.[1]) : response.ContentLength;
    if (range && !Number.isSafeInteger(sizeBytes)) {
      // Without the size, a shortened range cannot be distinguished from a whole one. The fault is the
      // service's, not the copy's, so this is not a RangeError, which would mark the copy corrupt.
      body.destroy();
      throw new Error(`The S3 response to a range request for ${objectKey} has no object size in Content-Range (${JSON.stringify(response.ContentRange ?? null)}).`);
    }
    if (expectedSizeBytes !== undefined && sizeBytes !== undefined && sizeBytes !== expectedSizeBytes) {
      body.destroy();
      throw new ObjectSizeMismatchError(this.id, objectKey, sizeBytes, expectedSizeBytes);
    }
    if (range && range.end >= sizeBytes!) {
      body.destroy();
      throw new RangeError(`Byte range ${range.start}-${range.end} is invalid for an object of ${sizeBytes} bytes.`);
    }
    return body;
  }

  async stat(objectKey: string): Promise<{ sizeBytes: number; modifiedAt: Date } | null> {
    assertValidObjectKey(objectKey);
    try {
      const response = await this.#client.send(new HeadObjectCommand({ Bucket: this.bucket, Key: objectKey }));
      return { sizeBytes: response.ContentLength ?? 0, modifiedAt: response.LastModified ?? new Date(0) };
    } catch (error) {
      // HEAD responses have no body, so a missing bucket also arrives as a bare 404.
      if (httpStatus(error) === 404) return null;
      throw this.#translateError(error, 'stat an object');
    }
  }

  async delete(objectKey: string): Promise<void> {
    assertValidObjectKey(objectKey);
    await this.#deleteKey(objectKey);
  }

  /** Lists the keys under blake3/ with ListObjectsV2 and yields those that match the key grammar. */
  async *list(): AsyncIterable<{ objectKey: string; sizeBytes: number; modifiedAt: Date }> {
    for await (const entry of this.#listKeys(OBJECT_PREFIX)) {
      if (isValidObjectKey(entry.key)) yield { objectKey: entry.key, sizeBytes: entry.sizeBytes, modifiedAt: entry.modifiedAt };
    }
  }

  /**
   * Sends HeadBucket with a time limit. S3 reports no capacity, so freeBytes and totalBytes are null.
   * NOTE: HeadBucket checks that the bucket is reachable with these credentials, not that writes succeed.
   */
  async health(): Promise<BackendHealth> {
    try {
      await this.#client.send(new HeadBucketCommand({ Bucket: this.bucket }), { abortSignal: AbortSignal.timeout(this.#healthTimeoutMs) });
      return { ok: true, freeBytes: null, totalBytes: null };
    } catch (error) {
      const translated = this.#translateError(error, 'reach the bucket');
      const detail = translated instanceof StorageUnavailableError ? translated.message : describeError(error);
      return { ok: false, freeBytes: null, totalBytes: null, detail };
    }
  }

  /**
   * Deletes tmp/ objects and aborts multipart uploads (see listMultipartUploads) older than the stale age
   * (24 hours by default), so writers of other running processes keep their uploads. Returns the keys.
   */
  async recoverTemporaryFiles(): Promise<string[]> {
    const cutoff = Date.now() - this.#staleTemporaryObjectMs;
    const removed: string[] = [];

    for await (const entry of this.#listKeys(TEMPORARY_PREFIX)) {
      if (entry.modifiedAt.getTime() > cutoff) continue;
      await this.#deleteKey(entry.key);
      removed.push(entry.key);
    }

    for (const upload of await this.listMultipartUploads()) {
      if (upload.initiated.getTime() > cutoff) continue;
      try {
        await this.#client.send(new AbortMultipartUploadCommand({ Bucket: this.bucket, Key: upload.key, UploadId: upload.uploadId }));
      } catch (error) {
        if (httpStatus(error) !== 404) throw this.#translateError(error, 'abort a multipart upload');
      }
      removed.push(`${upload.key} (multipart upload ${upload.uploadId})`);
    }
    return removed;
  }

  /** Lists the unfinished multipart uploads of this backend: writers' uploads to tmp/ and part-by-part copies to blake3/. */
  async listMultipartUploads(): Promise<Array<{ key: string; uploadId: string; initiated: Date }>> {
    const uploads: Array<{ key: string; uploadId: string; initiated: Date }> = [];
    let keyMarker: string | undefined;
    let uploadIdMarker: string | undefined;
    for (;;) {
      let response;
      try {
        response = await this.#client.send(
          new ListMultipartUploadsCommand({ Bucket: this.bucket, KeyMarker: keyMarker, UploadIdMarker: uploadIdMarker }),
        );
      } catch (error) {
        throw this.#translateError(error, 'list multipart uploads');
      }
      for (const upload of response.Uploads ?? []) {
        if (!upload.Key || !upload.UploadId) continue;
        if (!upload.Key.startsWith(TEMPORARY_PREFIX) && !upload.Key.startsWith(OBJECT_PREFIX)) continue;
        uploads.push({ key: upload.Key, uploadId: upload.UploadId, initiated: upload.Initiated ?? new Date(0) });
      }
      if (!response.IsTruncated) return uploads;
      keyMarker = response.NextKeyMarker;
      uploadIdMarker = response.NextUploadIdMarker;
    }
  }

  /** Lists the temporary keys (tmp/ objects), for tests and diagnostics. */
  async listTemporaryKeys(): Promise<string[]> {
    const keys: string[] = [];
    for await (const entry of this.#listKeys(TEMPORARY_PREFIX)) keys.push(entry.key);
    return keys;
  }

  async *#listKeys(prefix: string): AsyncIterable<{ key: string; sizeBytes: number; modifiedAt: Date }> {
    let continuationToken: string | undefined;
    do {
      let response;
      try {
        response = await this.#client.send(new ListObjectsV2Command({ Bucket: this.bucket, Prefix: prefix, ContinuationToken: continuationToken }));
      } catch (error) {
        throw this.#translateError(error, 'list objects');
      }
      for (const item of response.Contents ?? []) {
        if (item.Key) yield { key: item.Key, sizeBytes: item.Size ?? 0, modifiedAt: item.LastModified ?? new Date(0) };
      }
      continuationToken = response.IsTruncated ? response.NextContinuationToken : undefined;
    } while (continuationToken);
  }

  async #deleteKey(key: string): Promise<void> {
    try {
      await this.#client.send(new DeleteObjectCommand({ Bucket: this.bucket, Key: key }));
    } catch (error) {
      // S3 returns 204 for a missing key, and some compatible services return 404 instead.
      if (httpStatus(error) === 404 && errorName(error) !== 'NoSuchBucket') return;
      throw this.#translateError(error, 'delete an object');
    }
  }

  /** Copies an object on the server: CopyObject up to maxSingleCopyBytes, a multipart copy above. */
  async #copyObject(sourceKey: string, targetKey: string, sizeBytes: number): Promise<void> {
    const copySource = `${this.bucket}/${sourceKey}`;
    if (sizeBytes <= this.#maxSingleCopyBytes) {
      try {
        await this.#client.send(new CopyObjectCommand({ Bucket: this.bucket, Key: targetKey, CopySource: copySource }));
      } catch (error) {
        throw this.#translateError(error, 'copy an object');
      }
      return;
    }

    let uploadId: string | undefined;
    try {
      const created = await this.#client.send(new CreateMultipartUploadCommand({ Bucket: this.bucket, Key: targetKey }));
      uploadId = created.UploadId;
      const parts: CompletedPart[] = [];
      for (let start = 0, partNumber = 1; start < sizeBytes; start += this.#copyPartSizeBytes, partNumber += 1) {
        const end = Math.min(start + this.#copyPartSizeBytes, sizeBytes) - 1;
        const part = await this.#client.send(
          new UploadPartCopyCommand({
            Bucket: this.bucket,
            Key: targetKey,
            UploadId: uploadId,
            PartNumber: partNumber,
            CopySource: copySource,
            CopySourceRange: `bytes=${start}-${end}`,
          }),
        );
        parts.push({ PartNumber: partNumber, ETag: part.CopyPartResult?.ETag });
      }
      await this.#client.send(
        new CompleteMultipartUploadCommand({ Bucket: this.bucket, Key: targetKey, UploadId: uploadId, MultipartUpload: { Parts: parts } }),
      );
    } catch (error) {
      if (uploadId) {
        try {
          await this.#client.send(new AbortMultipartUploadCommand({ Bucket: this.bucket, Key: targetKey, UploadId: uploadId }));
        } catch (abortError) {
          getLogger().warn(
            { err: abortError, backend_id: this.id, key: targetKey, upload_id: uploadId },
            'failed to abort the multipart upload of a failed copy; recoverTemporaryFiles aborts it once it is stale',
          );
        }
      }
      throw this.#translateError(error, 'copy an object in parts');
    }
  }

  /**
   * Wraps errors that mean the service cannot serve requests (unreachable, timed out, credentials
   * rejected, bucket missing, 5xx) in StorageUnavailableError; returns others unchanged. The detail names
   * the S3 error code and HTTP status, never the credentials.
   */
  #translateError(error: unknown, operation: string): unknown {
    if (error instanceof StorageUnavailableError || error instanceof BlobNotFoundError || error instanceof InvalidObjectKeyError) return error;
    const status = httpStatus(error);
    const name = errorName(error);
    let reason: string | undefined;
    if (status === 403) {
      reason = `access denied (${name}, HTTP 403); check the backend's access key pair and the bucket's permissions`;
    } else if (name === 'NoSuchBucket') {
      reason = `the bucket "${this.bucket}" does not exist (NoSuchBucket)`;
    } else if (status !== undefined && status >= 500) {
      reason = `the service failed (${name}, HTTP ${status})`;
    } else if (name === 'TimeoutError' || name === 'AbortError') {
      reason = `the request timed out (${name})`;
    } else if (NETWORK_ERROR_CODES.has(errorCode(error) ?? '')) {
      reason = `the endpoint cannot be reached (${errorCode(error)})`;
    } else if (error instanceof S3ServiceException) {
      reason = `the service rejected the request (${name}, HTTP ${status ?? 'unknown'})`;
    }
    if (reason === undefined) return error;
    return new StorageUnavailableError(this.id, `failed to ${operation}: ${reason}.`, { cause: error });
  }
}

function httpStatus(error: unknown): number | undefined {
  return (error as { $metadata?: { httpStatusCode?: number } } | undefined)?.$metadata?.httpStatusCode;
}

function errorName(error: unknown): string {
  return (error as Error | undefined)?.name ?? 'Error';
}

/** Returns the Node.js error code, also from an AggregateError of several connection attempts. */
function errorCode(error: unknown): string | undefined {
  const code = (error as NodeJS.ErrnoException | undefined)?.code;
  if (code) return code;
  const inner = (error as AggregateError | undefined)?.errors?.[0];
  return (inner as NodeJS.ErrnoException | undefined)?.code;
}

function describeError(error: unknown): string {
  return `${errorName(error)}: ${(error as Error | undefined)?.message ?? String(error)}`;
}
