import path from 'node:path';
import { z } from 'zod';
import { DEFAULT_MAX_METADATA_BYTES } from './http/json-limits';

const booleanFlag = z
  .enum(['true', 'false', '1', '0', ''])
  .default('false')
  .transform((value) => value === 'true' || value === '1');

const positiveInteger = (fallback: number) => z.coerce.number().int().positive().default(fallback);

/** S3's minimum size of a multipart upload part (5 MiB), and so the lower bound of S3_PART_SIZE_BYTES. */
const MIN_S3_PART_SIZE_BYTES = 5 * 1024 * 1024;

/** Environment variables read once at start; every setting has a default that works on one machine. */
export const SettingsSchema = z.object({
  DATABASE_URL: z.string().url().optional(),
  DATA_DIR: z.string().default('./data'),
  STORAGE_ROOT: z.string().optional(),
  PGLITE_DIR: z.string().optional(),
  ANON_READ: booleanFlag,
  // Opens GET /api/v1/metrics to requests without a token, for a Prometheus server on a private network.
  METRICS_ANON: booleanFlag,
  MAX_FILE_SIZE_BYTES: positiveInteger(1024 ** 4),
  MAX_METADATA_BYTES: positiveInteger(DEFAULT_MAX_METADATA_BYTES),
  LOG_LEVEL: z.enum(['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent']).default('info'),
  RETENTION_CLASSES_FILE: z.string().optional(),
  SWEEP_INTERVAL_SECONDS: z.coerce.number().int().min(0).default(300),
  ORPHAN_SAFETY_WINDOW_SECONDS: z.coerce.number().int().min(0).default(3600),
  UPLOAD_EXPIRY_SECONDS: positiveInteger(24 * 3600),
  SESSION_TTL_SECONDS: positiveInteger(12 * 3600),
  // Read rate of the fixity scrub in megabytes (10^6 bytes) per second, and the period of its full cycle (0 turns it off).
  SCRUB_RATE_MB_PER_S: z.coerce.number().positive().default(50),
  SCRUB_INTERVAL_SECONDS: z.coerce.number().int().min(0).default(24 * 3600),
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
};

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
  if (values.REPLICA_COUNT === 2 && !values.REPLICA_STORAGE_ROOT) {
    throw new Error('Invalid environment settings:\n  REPLICA_COUNT: 2 needs REPLICA_STORAGE_ROOT, the directory of the second copy.');
  }
  const s3Problems = checkS3Settings(values);
  if (s3Problems.length > 0) throw new Error(`Invalid environment settings:\n${s3Problems.map((line) => `  ${line}`).join('\n')}`);
  cached = {
    ...values,
    storageRoot: path.resolve(/*turbopackIgnore: true*/ values.STORAGE_ROOT ?? path.join(values.DATA_DIR, 'blobs')),
    pgliteDir: path.resolve(/*turbopackIgnore: true*/ values.PGLITE_DIR ?? path.join(values.DATA_DIR, 'pglite')),
    replicaStorageRoot: values.REPLICA_STORAGE_ROOT ? path.resolve(/*turbopackIgnore: true*/ values.REPLICA_STORAGE_ROOT) : undefined,
    uploadStagingDir: path.resolve(/*turbopackIgnore: true*/ path.join(values.DATA_DIR, 'uploads')),
  };
  return cached;
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
