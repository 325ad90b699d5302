import { execFile } from 'node:child_process';
import path from 'node:path';
import { promisify } from 'node:util';
import { CreateBucketCommand, DeleteBucketCommand, S3Client } from '@aws-sdk/client-s3';

const ROOT = path.resolve(import.meta.dirname, '../..');
const SCRIPT = path.join(ROOT, 'scripts/swift-test-server.sh');
const run = promisify(execFile);

/**
 * True when TEST_SWIFT=1: the S3 tests then start their own Swift with scripts/swift-test-server.sh.
 * vitest.config.ts leaves the S3 test files out otherwise, so they never show up as skipped.
 */
export const ON_SWIFT = process.env.TEST_SWIFT === '1';

export interface SwiftServer {
  endpoint: string;
  region: string;
  accessKeyId: string;
  secretAccessKey: string;
  /** Stops every Swift process and removes its directory; safe to call twice. */
  stop(): Promise<void>;
  /** Stops the proxy and storage servers but keeps memcached and the stored objects, as in an outage. */
  stopServers(): Promise<void>;
  /** Starts the servers that stopServers stopped, on the same port with the same objects; resolves once they respond. */
  startServers(): Promise<void>;
}

/** Starts a single-node Swift with s3api on loopback (about 6 to 15 s) and returns its S3 endpoint and credentials. */
export async function startSwift(): Promise<SwiftServer> {
  const stdout = await startWithFreshPorts();
  const values = new Map<string, string>();
  for (const line of stdout.split('\n')) {
    const separator = line.indexOf('=');
    if (separator > 0) values.set(line.slice(0, separator), line.slice(separator + 1));
  }
  const required = (name: string): string => {
    const value = values.get(name);
    if (!value) throw new Error(`swift-test-server.sh start printed no ${name}; its output was:\n${stdout}`);
    return value;
  };
  const directory = required('SWIFT_DIR');
  let stopped: Promise<void> | undefined;
  return {
    endpoint: required('S3_ENDPOINT'),
    region: required('S3_REGION'),
    accessKeyId: required('S3_ACCESS_KEY_ID'),
    secretAccessKey: required('S3_SECRET_ACCESS_KEY'),
    stop() {
      stopped ??= run(SCRIPT, ['stop', directory], { cwd: ROOT, timeout: 60_000 }).then(() => undefined);
      return stopped;
    },
    async stopServers() {
      await run(SCRIPT, ['stop-servers', directory], { cwd: ROOT, timeout: 60_000 });
    },
    async startServers() {
      await run(SCRIPT, ['start-servers', directory], { cwd: ROOT, timeout: 120_000 });
    },
  };
}

/** Returns an S3 client for the Swift server, with the checksum settings Swift's s3api accepts. */
export function swiftClient(swift: SwiftServer, secretAccessKey = swift.secretAccessKey): S3Client {
  return new S3Client({
    region: swift.region,
    endpoint: swift.endpoint,
    forcePathStyle: true,
    credentials: { accessKeyId: swift.accessKeyId, secretAccessKey },
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
  });
}

/** Returns the short-form settings (STORAGE_BACKEND=s3 and S3_*) that store a server's blobs in `bucket` with 5 MiB parts. */
export function s3PrimarySettings(swift: SwiftServer, bucket: string): Record<string, string> {
  return {
    STORAGE_BACKEND: 's3',
    S3_ENDPOINT: swift.endpoint,
    S3_REGION: swift.region,
    S3_BUCKET: bucket,
    S3_ACCESS_KEY_ID: swift.accessKeyId,
    S3_SECRET_ACCESS_KEY: swift.secretAccessKey,
    S3_FORCE_PATH_STYLE: 'true',
    S3_PART_SIZE_BYTES: String(5 * 1024 * 1024),
  };
}

export async function createBucket(client: S3Client, bucket: string): Promise<void> {
  await client.send(new CreateBucketCommand({ Bucket: bucket }));
}

export async function deleteBucket(client: S3Client, bucket: string): Promise<void> {
  await client.send(new DeleteBucketCommand({ Bucket: bucket }));
}

/** Returns the server settings that make S3 on `swift` the only backend, with 5 MiB parts and path-style addressing. */
export function s3Settings(swift: SwiftServer, bucket: string): Record<string, string> {
  return {
    STORAGE_BACKEND: 's3',
    S3_ENDPOINT: swift.endpoint,
    S3_REGION: swift.region,
    S3_BUCKET: bucket,
    S3_ACCESS_KEY_ID: swift.accessKeyId,
    S3_SECRET_ACCESS_KEY: swift.secretAccessKey,
    S3_FORCE_PATH_STYLE: 'true',
    S3_PART_SIZE_BYTES: String(5 * 1024 * 1024),
  };
}

/**
 * Runs `swift-test-server.sh start` up to three times. The script picks free ports before the servers bind
 * them, so a server of a test file running in parallel can take one in between. The script then stops
 * what it started and fails, and a new attempt picks new ports.
 */
async function startWithFreshPorts(): Promise<string> {
  const attempts = 3;
  for (let attempt = 1; ; attempt++) {
    try {
      return (await run(SCRIPT, ['start'], { cwd: ROOT, timeout: 120_000 })).stdout;
    } catch (error) {
      const message = error instanceof Error ? error.message : String(error);
      if (attempt === attempts || !/Could not bind|exited during start-up/.test(message)) throw error;
      console.warn(`swift-test-server.sh start failed (attempt ${attempt} of ${attempts}), starting again on new ports:\n${message}`);
    }
  }
}
