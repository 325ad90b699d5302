import fs from 'node:fs';
import path from 'node:path';
import { z } from 'zod';

/** S3's minimum size of a multipart upload part (5 MiB), except the last one. */
export const MIN_S3_PART_SIZE_BYTES = 5 * 1024 * 1024;
export const DEFAULT_S3_PART_SIZE_BYTES = 8 * 1024 * 1024;
/** Time limit of opening a TCP connection to an S3 endpoint. */
export const DEFAULT_S3_CONNECT_TIMEOUT_MS = 3_000;
/** Time an S3 request may go without sending or receiving a byte before it fails. */
export const DEFAULT_S3_SOCKET_TIMEOUT_MS = 30_000;

const BACKEND_ID_RULE = 'lowercase letters, digits, "_" or "-", starting with a letter or digit, at most 63 characters';
const ENV_NAME_RULE = 'the name of an environment variable: letters, digits and "_", not starting with a digit';

const BackendId = z.string().regex(/^[a-z0-9][a-z0-9_-]{0,62}$/, BACKEND_ID_RULE);
const RetrievalTier = z.string().regex(/^[a-z0-9][a-z0-9_-]{0,62}$/, BACKEND_ID_RULE).default('hot');
const EnvName = z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/, ENV_NAME_RULE);

const FilesystemBackendEntry = z
  .object({
    id: BackendId,
    kind: z.literal('fs'),
    root: z.string().min(1, 'must name a directory'),
    retrieval_tier: RetrievalTier,
  })
  .strict();

const S3BackendEntry = z
  .object({
    id: BackendId,
    kind: z.literal('s3'),
    endpoint: z.url().optional(),
    region: z.string().min(1).default('us-east-1'),
    bucket: z.string().min(1, 'must name an existing bucket'),
    force_path_style: z.boolean().default(false),
    part_size_bytes: z
      .number()
      .int()
      .min(MIN_S3_PART_SIZE_BYTES, `must be at least ${MIN_S3_PART_SIZE_BYTES} (5 MiB), the smallest part S3 accepts`)
      .default(DEFAULT_S3_PART_SIZE_BYTES),
    connect_timeout_ms: z.number().int().positive().default(DEFAULT_S3_CONNECT_TIMEOUT_MS),
    socket_timeout_ms: z.number().int().positive().default(DEFAULT_S3_SOCKET_TIMEOUT_MS),
    // Names of environment variables, never the secrets: the file may be readable by more people than the environment.
    access_key_id_env: EnvName.optional(),
    secret_access_key_env: EnvName.optional(),
    retrieval_tier: RetrievalTier,
  })
  .strict()
  .refine((entry) => (entry.access_key_id_env === undefined) === (entry.secret_access_key_env === undefined), {
    message: 'set both access_key_id_env and secret_access_key_env, or neither to use the AWS SDK default credential chain',
    path: ['access_key_id_env'],
  });

const BackendEntry = z.discriminatedUnion('kind', [FilesystemBackendEntry, S3BackendEntry]);

/** The JSON document that BACKENDS_FILE names. */
export const BackendsFile = z
  .object({
    backends: z.array(BackendEntry).min(1, 'must list at least one backend'),
    primary: BackendId,
    copies: z.number().int().min(1).default(1),
  })
  .strict()
  .superRefine((file, context) => {
    const seen = new Set<string>();
    file.backends.forEach((backend, index) => {
      if (seen.has(backend.id)) context.addIssue({ code: 'custom', path: ['backends', index, 'id'], message: `duplicate id "${backend.id}"; ids must be unique` });
      seen.add(backend.id);
    });
    if (!seen.has(file.primary)) {
      context.addIssue({ code: 'custom', path: ['primary'], message: `"${file.primary}" is not the id of a listed backend` });
    }
    if (file.copies > file.backends.length) {
      context.addIssue({
        code: 'custom',
        path: ['copies'],
        message: `${file.copies} copies need at least ${file.copies} backends, but ${file.backends.length} are listed`,
      });
    }
  });
export type BackendsFile = z.infer<typeof BackendsFile>;

export interface FilesystemBackendConfig {
  id: string;
  kind: 'fs';
  /** Absolute path of the store's directory. */
  root: string;
  retrievalTier: string;
}

export interface S3BackendConfig {
  id: string;
  kind: 's3';
  endpoint?: string;
  region: string;
  bucket: string;
  forcePathStyle: boolean;
  partSizeBytes: number;
  connectTimeoutMs: number;
  socketTimeoutMs: number;
  /** Access key pair read from the environment; undefined means the AWS SDK default credential chain. */
  credentials?: { accessKeyId: string; secretAccessKey: string };
  retrievalTier: string;
}

export type BackendConfig = FilesystemBackendConfig | S3BackendConfig;

/** Every configured backend, which one receives new blobs, and how many copies of each new blob to write. */
export interface StorageConfig {
  backends: BackendConfig[];
  primary: string;
  /** Copies of each new blob: the primary's, then one on each further backend in list order. */
  copies: number;
}

/** Environment variables of the short form, which BACKENDS_FILE replaces. */
export const SHORT_FORM_VARIABLES = [
  'STORAGE_ROOT',
  'STORAGE_BACKEND',
  'S3_ENDPOINT',
  'S3_REGION',
  'S3_BUCKET',
  'S3_ACCESS_KEY_ID',
  'S3_SECRET_ACCESS_KEY',
  'S3_FORCE_PATH_STYLE',
  'S3_PART_SIZE_BYTES',
  'REPLICA_STORAGE_ROOT',
  'REPLICA_COUNT',
] as const;

/** Raised with every problem of a backends file, one line each, so a bad file stops the server at start. */
export class BackendsConfigError extends Error {
  override name = 'BackendsConfigError';
}

/**
 * Validates a parsed backends file and resolves it into a StorageConfig: relative fs roots are resolved
 * against `baseDirectory`, and S3 credentials are read from the environment variables the file names.
 * Throws BackendsConfigError naming each field and the rule it breaks.
 */
export function parseBackendsFile(raw: unknown, source: string, env: Record<string, string | undefined>, baseDirectory: string): StorageConfig {
  const parsed = BackendsFile.safeParse(raw);
  if (!parsed.success) {
    const lines = parsed.error.issues.map((issue) => `  ${issue.path.join('.') || '(file)'}: ${issue.message}`);
    throw new BackendsConfigError(`BACKENDS_FILE ${source} is invalid:\n${lines.join('\n')}`);
  }

  const problems: string[] = [];
  const backends = parsed.data.backends.map((entry, index): BackendConfig => {
    if (entry.kind === 'fs') {
      return { id: entry.id, kind: 'fs', root: path.resolve(baseDirectory, entry.root), retrievalTier: entry.retrieval_tier };
    }
    let credentials: S3BackendConfig['credentials'];
    if (entry.access_key_id_env && entry.secret_access_key_env) {
      const accessKeyId = env[entry.access_key_id_env];
      const secretAccessKey = env[entry.secret_access_key_env];
      if (!accessKeyId) problems.push(`  backends.${index}.access_key_id_env: the environment variable ${entry.access_key_id_env} is not set`);
      if (!secretAccessKey) problems.push(`  backends.${index}.secret_access_key_env: the environment variable ${entry.secret_access_key_env} is not set`);
      if (accessKeyId && secretAccessKey) credentials = { accessKeyId, secretAccessKey };
    }
    return {
      id: entry.id,
      kind: 's3',
      endpoint: entry.endpoint,
      region: entry.region,
      bucket: entry.bucket,
      forcePathStyle: entry.force_path_style,
      partSizeBytes: entry.part_size_bytes,
      connectTimeoutMs: entry.connect_timeout_ms,
      socketTimeoutMs: entry.socket_timeout_ms,
      credentials,
      retrievalTier: entry.retrieval_tier,
    };
  });
  problems.push(...sharedRootProblems(backends).map((line) => `  ${line}`));
  const credentialVariables = new Set(
    parsed.data.backends.flatMap((entry) => (entry.kind === 's3' ? [entry.access_key_id_env, entry.secret_access_key_env] : [])),
  );
  // A short-form variable next to BACKENDS_FILE would otherwise be ignored without a word. A variable
  // that the file names as a credential source is allowed.
  for (const name of SHORT_FORM_VARIABLES) {
    if (env[name] !== undefined && env[name] !== '' && !credentialVariables.has(name)) {
      problems.push(`  ${name}: must not be set together with BACKENDS_FILE; describe every backend in the file instead`);
    }
  }
  if (problems.length > 0) throw new BackendsConfigError(`BACKENDS_FILE ${source} is invalid:\n${problems.join('\n')}`);
  return { backends, primary: parsed.data.primary, copies: parsed.data.copies };
}

/**
 * Returns a problem line for each fs backend whose resolved root is the root of an earlier one. Two such
 * backends share one directory, so their two copies would be a single file that one deletion loses.
 */
export function sharedRootProblems(backends: BackendConfig[]): string[] {
  const owners = new Map<string, string>();
  const problems: string[] = [];
  backends.forEach((backend, index) => {
    if (backend.kind !== 'fs') return;
    const owner = owners.get(backend.root);
    if (owner === undefined) owners.set(backend.root, backend.id);
    else problems.push(`backends.${index}.root: ${backend.root} is already the root of "${owner}". Each fs backend needs its own directory`);
  });
  return problems;
}

/** Reads and validates BACKENDS_FILE; relative fs roots are resolved against the file's directory. */
export function loadBackendsFile(file: string, env: Record<string, string | undefined>): StorageConfig {
  let raw: unknown;
  try {
    raw = JSON.parse(fs.readFileSync(file, 'utf8'));
  } catch (error) {
    throw new BackendsConfigError(`BACKENDS_FILE ${file} could not be read as JSON: ${(error as Error).message}`);
  }
  return parseBackendsFile(raw, file, env, path.dirname(path.resolve(/*turbopackIgnore: true*/ file)));
}

