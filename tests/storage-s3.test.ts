import { randomBytes } from 'node:crypto';
import { PassThrough, Readable } from 'node:stream';
import {
  AbortMultipartUploadCommand,
  CreateMultipartUploadCommand,
  DeleteObjectCommand,
  HeadObjectCommand,
  ListMultipartUploadsCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  type S3Client,
} from '@aws-sdk/client-s3';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { digestStream } from '../server/digest/index';
import { objectKeyForBlake3, StorageUnavailableError } from '../server/storage/backend';
import { MIN_PART_SIZE_BYTES, S3Backend, type S3BackendOptions } from '../server/storage/s3';
import { storeStream } from '../server/storage/store-blob';
import { runBackendConformance } from './support/storage-conformance';
import { createBucket, deleteBucket, startSwift, swiftClient, type SwiftServer } from './support/swift';

let swift: SwiftServer;
let client: S3Client;

beforeAll(async () => {
  swift = await startSwift();
  client = swiftClient(swift);
});

afterAll(async () => {
  await swift?.stop();
});

function newBucketName(): string {
  return `storage-test-${randomBytes(6).toString('hex')}`;
}

function makeBackend(bucket: string, options: Partial<S3BackendOptions> = {}): S3Backend {
  return new S3Backend({
    id: 's3-test',
    bucket,
    region: swift.region,
    endpoint: swift.endpoint,
    forcePathStyle: true,
    credentials: { accessKeyId: swift.accessKeyId, secretAccessKey: swift.secretAccessKey },
    partSizeBytes: MIN_PART_SIZE_BYTES,
    healthTimeoutMs: 3_000,
    ...options,
  });
}

async function listAllKeys(bucket: string): Promise<string[]> {
  const keys: string[] = [];
  let continuationToken: string | undefined;
  do {
    const response = await client.send(new ListObjectsV2Command({ Bucket: bucket, ContinuationToken: continuationToken }));
    for (const item of response.Contents ?? []) keys.push(item.Key!);
    continuationToken = response.IsTruncated ? response.NextContinuationToken : undefined;
  } while (continuationToken);
  return keys;
}

async function listUploads(bucket: string): Promise<Array<{ key: string; uploadId: string }>> {
  const response = await client.send(new ListMultipartUploadsCommand({ Bucket: bucket }));
  return (response.Uploads ?? []).map((upload) => ({ key: upload.Key!, uploadId: upload.UploadId! }));
}

/** Lists uncommitted leftovers: objects outside blake3/ and unfinished multipart uploads. */
async function listTemporaryItems(bucket: string): Promise<string[]> {
  const keys = (await listAllKeys(bucket)).filter((key) => !key.startsWith('blake3/'));
  const uploads = (await listUploads(bucket)).map((upload) => `${upload.key} (multipart upload)`);
  return [...keys, ...uploads];
}

async function emptyAndDeleteBucket(bucket: string): Promise<void> {
  for (const upload of await listUploads(bucket)) {
    await client.send(new AbortMultipartUploadCommand({ Bucket: bucket, Key: upload.key, UploadId: upload.uploadId }));
  }
  for (const key of await listAllKeys(bucket)) await client.send(new DeleteObjectCommand({ Bucket: bucket, Key: key }));
  await deleteBucket(client, bucket);
}

runBackendConformance('S3 on Swift', async () => {
  const bucket = newBucketName();
  await createBucket(client, bucket);
  return {
    backend: makeBackend(bucket),
    reportsCapacity: false,
    listTemporaryItems: () => listTemporaryItems(bucket),
    cleanup: () => emptyAndDeleteBucket(bucket),
  };
});

describe('S3 backend on Swift', () => {
  let bucket: string;

  beforeEach(async () => {
    bucket = newBucketName();
    await createBucket(client, bucket);
  });

  afterEach(async () => {
    await emptyAndDeleteBucket(bucket);
  });

  it('copies a large object in parts', async () => {
    const backend = makeBackend(bucket, { maxSingleCopyBytes: 1024 * 1024, copyPartSizeBytes: MIN_PART_SIZE_BYTES });
    const bytes = randomBytes(2 * MIN_PART_SIZE_BYTES + 12_345);
    const stored = await storeStream(backend, Readable.from([bytes]), { maxBytes: bytes.length });

    expect(stored.created).toBe(true);
    expect((await backend.stat(stored.objectKey))?.sizeBytes).toBe(bytes.length);
    // A multipart object's ETag ends in -<part count>; a CopyObject copy would have a plain MD5.
    const head = await client.send(new HeadObjectCommand({ Bucket: bucket, Key: stored.objectKey }));
    expect(head.ETag).toMatch(/-3"$/);
    const readBack = await digestStream(await backend.read(stored.objectKey));
    expect(readBack.blake3Hex).toBe(stored.blake3Hex);
    expect(await listTemporaryItems(bucket)).toEqual([]);
  });

  it('recovers only stale temporary objects', async () => {
    await client.send(new PutObjectCommand({ Bucket: bucket, Key: 'tmp/1-left-by-a-crash', Body: 'partial' }));
    const { UploadId } = await client.send(new CreateMultipartUploadCommand({ Bucket: bucket, Key: 'tmp/2-left-by-a-crash' }));
    const committed = await storeStream(makeBackend(bucket), Readable.from([randomBytes(100)]), { maxBytes: 100 });

    expect(await makeBackend(bucket).recoverTemporaryFiles()).toEqual([]);
    expect(await listTemporaryItems(bucket)).toHaveLength(2);

    // Swift rounds Last-Modified up to the next second, so the leftovers count as 1 s old only 2 s later.
    await new Promise((resolve) => setTimeout(resolve, 2_000));
    const removed = await makeBackend(bucket, { staleTemporaryObjectMs: 1_000 }).recoverTemporaryFiles();
    expect(removed.sort()).toEqual(['tmp/1-left-by-a-crash', `tmp/2-left-by-a-crash (multipart upload ${UploadId})`]);
    expect(await listTemporaryItems(bucket)).toEqual([]);
    expect(await listAllKeys(bucket)).toEqual([committed.objectKey]);
  });

  it('rejects a wrong secret as unavailable', async () => {
    const backend = makeBackend(bucket, { credentials: { accessKeyId: swift.accessKeyId, secretAccessKey: 'wrong-secret' } });
    const objectKey = objectKeyForBlake3('ab'.repeat(32));

    const health = await backend.health();
    expect(health.ok).toBe(false);
    expect(health.detail).toMatch(/access denied .*HTTP 403/);

    await expect(backend.stat(objectKey)).rejects.toBeInstanceOf(StorageUnavailableError);
    await expect(backend.read(objectKey)).rejects.toThrow(/SignatureDoesNotMatch, HTTP 403/);
    const write = storeStream(backend, Readable.from([randomBytes(1000)]), { maxBytes: 1000 });
    await expect(write).rejects.toBeInstanceOf(StorageUnavailableError);
    await expect(write).rejects.toMatchObject({ status: 503, backendId: 's3-test' });
    expect(await listTemporaryItems(bucket)).toEqual([]);
  });

  it('rejects a large write with a wrong secret', async () => {
    const backend = makeBackend(bucket, { credentials: { accessKeyId: swift.accessKeyId, secretAccessKey: 'wrong-secret' } });
    const size = 3 * MIN_PART_SIZE_BYTES;
    const write = storeStream(backend, Readable.from([randomBytes(size)]), { maxBytes: size });
    await expect(write).rejects.toBeInstanceOf(StorageUnavailableError);
  });

  it('rejects a wrong secret before the source ends', async () => {
    const backend = makeBackend(bucket, { credentials: { accessKeyId: swift.accessKeyId, secretAccessKey: 'wrong-secret' } });
    // Two full parts start the multipart upload, and the source stays open, so the upload fails mid-stream.
    const source = new PassThrough();
    source.write(randomBytes(2 * MIN_PART_SIZE_BYTES + 1));
    const write = storeStream(backend, source, { maxBytes: 3 * MIN_PART_SIZE_BYTES });
    await expect(write).rejects.toBeInstanceOf(StorageUnavailableError);
    await expect(write).rejects.toMatchObject({ status: 503, backendId: 's3-test' });
    expect(source.destroyed).toBe(true);
  });

  it('reports a missing bucket', async () => {
    const backend = makeBackend('no-such-bucket-for-storage-tests');
    const health = await backend.health();
    expect(health.ok).toBe(false);
    expect(health.freeBytes).toBeNull();

    const write = storeStream(backend, Readable.from([randomBytes(1000)]), { maxBytes: 1000 });
    await expect(write).rejects.toBeInstanceOf(StorageUnavailableError);
  });
});

// Runs last because it stops the file's Swift server.
describe('S3 backend with Swift stopped', () => {
  it('reports health as not ok', async () => {
    const bucket = newBucketName();
    await createBucket(client, bucket);
    const backend = makeBackend(bucket);
    expect((await backend.health()).ok).toBe(true);

    await swift.stop();

    const health = await backend.health();
    expect(health.ok).toBe(false);
    expect(health.detail).toMatch(/cannot be reached|timed out/);
    await expect(backend.stat(objectKeyForBlake3('cd'.repeat(32)))).rejects.toBeInstanceOf(StorageUnavailableError);
  });
});
