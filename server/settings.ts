import path from 'node:path';
import { z } from 'zod';
import { DEFAULT_MAX_METADATA_BYTES } from './http/json-limits';
import {
  DEFAULT_S3_CONNECT_TIMEOUT_MS,
  DEFAULT_S3_SOCKET_TIMEOUT_MS,
  loadBackendsFile,
  MIN_S3_PART_SIZE_BYTES,
  sharedRootProblems,
  type BackendConfig,
  type StorageConfig,
} from './storage/backends-config';

/** A boolean setting: `true` or `1` turns it on, `false`, `0` or an empty value turns it off. */
const booleanSetting = (fallback: boolean) =>
  z
    .enum(['true', 'false', '1', '0', ''])
    .default(fallback ? 'true' : 'false')
    .transform((value) => value === 'true' || value === '1');
const booleanFlag = booleanSetting(false);

const positiveInteger = (fallback: number) => z.coerce.number().int().positive().default(fallback);

/** Environment variables read once at start; every setting has a default that works on one machine. */
export const SettingsSchema = z.object({
  DATABASE_URL: z.string().url().optional(),
  DATA_DIR: z.string().default('./data'),
  STORAGE_ROOT: z.string().optional(),
  PGLITE_DIR: z.string().optional(),
  ANON_READ: booleanFlag,
  // Opens GET /api/v1/metrics to requests without a token, for a Prometheus server on a private network.
  METRICS_ANON: booleanFlag,
  // Builds the tus Location URL from Forwarded or X-Forwarded-Proto and -Host, which only a proxy may set.
  TRUST_FORWARDED_HEADERS: booleanFlag,
  MAX_FILE_SIZE_BYTES: positiveInteger(1024 ** 4),
  MAX_METADATA_BYTES: positiveInteger(DEFAULT_MAX_METADATA_BYTES),
  LOG_LEVEL: z.enum(['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent']).default('info'),
  // Logs one line at level info for every API request once its response has ended.
  ACCESS_LOG: booleanSetting(true),
  RETENTION_CLASSES_FILE: z.string().optional(),
  SWEEP_INTERVAL_SECONDS: z.coerce.number().int().min(0).default(300),
  ORPHAN_SAFETY_WINDOW_SECONDS: z.coerce.number().int().min(0).default(3600),
  UPLOAD_EXPIRY_SECONDS: positiveInteger(24 * 3600),
  SESSION_TTL_SECONDS: positiveInteger(12 * 3600),
  // Read rate of the fixity scrub in megabytes (10^6 bytes) per second, and the period of its full cycle (0 turns it off).
  SCRUB_RATE_MB_PER_S: z.coerce.number().positive().default(50),
  // The scrub's read rate while this process receives an upload, at most SCRUB_RATE_MB_PER_S.
  SCRUB_BUSY_RATE_MB_PER_S: z.coerce.number().positive().default(5),
  SCRUB_INTERVAL_SECONDS: z.coerce.number().int().min(0).default(24 * 3600),
  // A JSON file that lists every storage backend, the primary and the number of copies. It replaces the
  // short form below (STORAGE_ROOT, STORAGE_BACKEND, S3_*, REPLICA_*), and setting both is an error.
  BACKENDS_FILE: z.string().min(1).optional(),
  // A second filesystem store; REPLICA_COUNT=2 writes every new blob to it as well as to STORAGE_ROOT.
  REPLICA_STORAGE_ROOT: z.string().optional(),
  REPLICA_COUNT: z.coerce.number().int().min(1).max(2).default(1),
  // Backend of new blobs: `fs` stores them under STORAGE_ROOT, `s3` in the bucket S3_BUCKET.
  STORAGE_BACKEND: z.enum(['fs', 's3']).default('fs'),
  S3_ENDPOINT: z.string().url().optional(),
  S3_REGION: z.string().min(1).default('us-east-1'),
  S3_BUCKET: z.string().min(1).optional(),
  S3_ACCESS_KEY_ID: z.string().min(1).optional(),
  S3_SECRET_ACCESS_KEY: z.string().min(1).optional(),
  S3_FORCE_PATH_STYLE: booleanFlag,
  S3_PART_SIZE_BYTES: z.coerce
    .number()
    .int()
    .min(MIN_S3_PART_SIZE_BYTES, `must be at least ${MIN_S3_PART_SIZE_BYTES} (5 MiB), the smallest part S3 accepts`)
    .default(8 * 1024 * 1024),
});

export type Settings = z.infer<typeof SettingsSchema> & {
  storageRoot: string;
  pgliteDir: string;
  replicaStorageRoot: string | undefined;
  /** Staging directory of unfinished tus uploads when the primary backend has none of its own (S3). */
  uploadStagingDir: string;
  /** The storage backends, from BACKENDS_FILE or from the short-form variables. */
  storage: StorageConfig;
};

export const PRIMARY_BACKEND_ID = 'fs-primary';
export const S3_PRIMARY_BACKEND_ID = 's3-primary';
export const REPLICA_BACKEND_ID = 'fs-replica';

let cached: Settings | undefined;

/** Parses process.env on first call; throws a readable error naming every invalid variable. */
export function getSettings(): Settings {
  if (cached) return cached;
  const parsed = SettingsSchema.safeParse(process.env);
  if (!parsed.success) {
    const lines = parsed.error.issues.map((issue) => `  ${issue.path.join('.')}: ${issue.message}`);
    throw new Error(`Invalid environment settings:\n${lines.join('\n')}`);
  }
  const values = parsed.data;
  const storageRoot = path.resolve(/*turbopackIgnore: true*/ values.STORAGE_ROOT ?? path.join(values.DATA_DIR, 'blobs'));
  const replicaStorageRoot = values.REPLICA_STORAGE_ROOT ? path.resolve(/*turbopackIgnore: true*/ values.REPLICA_STORAGE_ROOT) : undefined;
  let storage: StorageConfig;
  if (values.BACKENDS_FILE) {
    storage = loadBackendsFile(values.BACKENDS_FILE, process.env);
  } else {
    if (values.REPLICA_COUNT === 2 && !values.REPLICA_STORAGE_ROOT) {
      throw new Error('Invalid environment settings:\n  REPLICA_COUNT: 2 needs REPLICA_STORAGE_ROOT, the directory of the second copy.');
    }
    const s3Problems = checkS3Settings(values);
    if (s3Problems.length > 0) throw new Error(`Invalid environment settings:\n${s3Problems.map((line) => `  ${line}`).join('\n')}`);
    storage = shortFormStorage(values, storageRoot, replicaStorageRoot);
    if (sharedRootProblems(storage.backends).length > 0) {
      throw new Error('Invalid environment settings:\n  REPLICA_STORAGE_ROOT: must differ from STORAGE_ROOT, because the replica needs its own directory.');
    }
  }
  cached = {
    ...values,
    storageRoot,
    pgliteDir: path.resolve(/*turbopackIgnore: true*/ values.PGLITE_DIR ?? path.join(values.DATA_DIR, 'pglite')),
    replicaStorageRoot,
    uploadStagingDir: path.resolve(/*turbopackIgnore: true*/ path.join(values.DATA_DIR, 'uploads')),
    storage,
  };
  return cached;
}

/**
 * Builds the backends of the short form: `fs-primary` (STORAGE_ROOT) or `s3-primary` (the bucket of
 * STORAGE_BACKEND=s3), and `fs-replica` when REPLICA_STORAGE_ROOT is set. REPLICA_COUNT is the number of
 * copies, so with 1 the replica is read and repaired but not written.
 */
function shortFormStorage(values: z.infer<typeof SettingsSchema>, storageRoot: string, replicaStorageRoot: string | undefined): StorageConfig {
  const { S3_ACCESS_KEY_ID: accessKeyId, S3_SECRET_ACCESS_KEY: secretAccessKey } = values;
  const primary: BackendConfig =
    values.STORAGE_BACKEND === 'fs'
      ? { id: PRIMARY_BACKEND_ID, kind: 'fs', root: storageRoot, retrievalTier: 'hot' }
      : {
          id: S3_PRIMARY_BACKEND_ID,
          kind: 's3',
          // checkS3Settings rejects STORAGE_BACKEND=s3 without S3_BUCKET.
          bucket: values.S3_BUCKET!,
          region: values.S3_REGION,
          endpoint: values.S3_ENDPOINT,
          forcePathStyle: values.S3_FORCE_PATH_STYLE,
          credentials: accessKeyId && secretAccessKey ? { accessKeyId, secretAccessKey } : undefined,
          partSizeBytes: values.S3_PART_SIZE_BYTES,
          connectTimeoutMs: DEFAULT_S3_CONNECT_TIMEOUT_MS,
          socketTimeoutMs: DEFAULT_S3_SOCKET_TIMEOUT_MS,
          retrievalTier: 'hot',
        };
  const backends: BackendConfig[] = [primary];
  if (replicaStorageRoot) backends.push({ id: REPLICA_BACKEND_ID, kind: 'fs', root: replicaStorageRoot, retrievalTier: 'hot' });
  return { backends, primary: primary.id, copies: replicaStorageRoot ? values.REPLICA_COUNT : 1 };
}

/** Returns the problems of the S3 variables when STORAGE_BACKEND is s3, one line each. */
function checkS3Settings(values: z.infer<typeof SettingsSchema>): string[] {
  if (values.STORAGE_BACKEND !== 's3') return [];
  const problems: string[] = [];
  if (!values.S3_BUCKET) problems.push('S3_BUCKET: missing; STORAGE_BACKEND=s3 needs the name of an existing bucket.');
  if (Boolean(values.S3_ACCESS_KEY_ID) !== Boolean(values.S3_SECRET_ACCESS_KEY)) {
    problems.push('S3_ACCESS_KEY_ID, S3_SECRET_ACCESS_KEY: set both, or neither to use the AWS SDK default credential chain.');
  }
  return problems;
}

/** Drops the cached settings so tests can change process.env between cases. */
export function resetSettingsForTests(): void {
  cached = undefined;
}
