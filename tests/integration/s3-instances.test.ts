import fs from 'node:fs';
import path from 'node:path';
import { ListMultipartUploadsCommand, ListObjectsV2Command, type S3Client } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { objectKeyForBlake3 } from '@/server/storage/backend';
import { ApiClient } from '../support/client';
import { ON_POSTGRES } from '../support/database';
import { checkAlternatingUpload, errorLines } from '../support/instances';
import { createTestEnvironment, startServer, type TestEnvironment, type TestServer } from '../support/server';
import { createBucket, s3Settings, startSwift, swiftClient, type SwiftServer } from '../support/swift';

const BUCKET = 'artifact-store-instances';

// Two server processes share one database, so this file needs PostgreSQL (TEST_DATABASE_URL): PGlite is
// an embedded database that only one process can open.
describe.skipIf(!ON_POSTGRES)('two instances with S3 as the primary backend', () => {
  let swift: SwiftServer;
  let client: S3Client;
  let environment: TestEnvironment;
  let serverA: TestServer;
  let serverB: TestServer;

  beforeAll(async () => {
    swift = await startSwift();
    client = swiftClient(swift);
    await createBucket(client, BUCKET);
    // Both servers get the same DATA_DIR, so DATA_DIR/uploads is the tus staging directory they share.
    environment = await createTestEnvironment(s3Settings(swift, BUCKET));
    [serverA, serverB] = await Promise.all([startServer(environment), startServer(environment)]);
  });

  afterAll(async () => {
    await Promise.all([serverA?.stop(), serverB?.stop()]);
    await environment?.cleanup();
    await swift?.stop();
  });

  it('tus PATCH alternating instances keeps digests', { timeout: 300_000 }, async () => {
    const apiA = new ApiClient(serverA.url, environment.adminToken);
    const apiB = new ApiClient(serverB.url, environment.adminToken);

    const file = await checkAlternatingUpload([apiA, apiB], environment.dir);

    expect(file.storage.map((location: any) => location.backend_id)).toEqual(['s3-primary']);
    const listing = await client.send(new ListObjectsV2Command({ Bucket: BUCKET }));
    expect((listing.Contents ?? []).map((item) => item.Key)).toEqual([objectKeyForBlake3(file.digest_primary_hex)]);
    const multipart = await client.send(new ListMultipartUploadsCommand({ Bucket: BUCKET }));
    expect(multipart.Uploads ?? []).toEqual([]);
    expect(fs.readdirSync(path.join(environment.env.DATA_DIR, 'uploads'))).toEqual([]);

    expect(serverB.output()).toContain('rebuilt upload hash state from the staging file');
    expect(errorLines(serverA.output())).toEqual([]);
    expect(errorLines(serverB.output())).toEqual([]);
  });
});
