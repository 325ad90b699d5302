import { sql } from 'drizzle-orm';
import {
  bigint,
  boolean,
  check,
  customType,
  index,
  integer,
  jsonb,
  pgTable,
  primaryKey,
  smallint,
  text,
  timestamp,
  uniqueIndex,
  uuid,
} from 'drizzle-orm/pg-core';

/** PostgreSQL bytea as a Node Buffer (drizzle has no built-in bytea column). */
export const bytea = customType<{ data: Buffer; driverData: Buffer | Uint8Array }>({
  dataType: () => 'bytea',
  fromDriver: (value) => (Buffer.isBuffer(value) ? value : Buffer.from(value)),
});

const createdAt = () => timestamp('created_at', { withTimezone: true, mode: 'date' }).notNull().defaultNow();

export const retentionClasses = pgTable('retention_classes', {
  classId: text('class_id').primaryKey(),
  // Null means the class never expires.
  defaultDurationSeconds: bigint('default_duration_seconds', { mode: 'number' }),
  deletionStrategy: text('deletion_strategy').notNull(),
  updatedAt: timestamp('updated_at', { withTimezone: true, mode: 'date' }).notNull().defaultNow(),
});

export const metadataSchemas = pgTable('metadata_schemas', {
  slug: text('slug').primaryKey(),
  schema: jsonb('schema').notNull(),
  createdBy: text('created_by').notNull(),
  createdAt: createdAt(),
});

export const packages = pgTable(
  'packages',
  {
    id: uuid('id').primaryKey(),
    name: text('name').notNull(),
    producer: text('producer').notNull(),
    subject: text('subject').notNull(),
    retentionClass: text('retention_class')
      .notNull()
      .references(() => retentionClasses.classId),
    metadataSchema: text('metadata_schema').references(() => metadataSchemas.slug),
    metadata: jsonb('metadata').notNull().default({}),
    status: text('status', { enum: ['open', 'finalized', 'deleted'] }).notNull().default('open'),
    manifestDigest: text('manifest_digest'),
    // Content addresses of the stored manifest encodings, written at finalize.
    manifestCborAddress: text('manifest_cbor_address'),
    manifestJsonAddress: text('manifest_json_address'),
    createdBy: text('created_by').notNull(),
    createdAt: createdAt(),
    finalizedAt: timestamp('finalized_at', { withTimezone: true, mode: 'date' }),
    expiresAt: timestamp('expires_at', { withTimezone: true, mode: 'date' }),
    deletedAt: timestamp('deleted_at', { withTimezone: true, mode: 'date' }),
    lastEventSequence: bigint('last_event_sequence', { mode: 'number' }),
  },
  (table) => [
    index('packages_created_idx').on(table.createdAt.desc(), table.id.desc()),
    index('packages_producer_idx').on(table.producer, table.createdAt.desc(), table.id.desc()),
    index('packages_subject_idx').on(table.subject, table.createdAt.desc(), table.id.desc()),
    index('packages_status_idx').on(table.status, table.expiresAt),
    index('packages_metadata_idx').using('gin', sql`${table.metadata} jsonb_path_ops`),
    // The sweep's check that no package still names a blob as its manifest.
    index('packages_manifest_cbor_idx').on(table.manifestCborAddress).where(sql`${table.manifestCborAddress} IS NOT NULL`),
    index('packages_manifest_json_idx').on(table.manifestJsonAddress).where(sql`${table.manifestJsonAddress} IS NOT NULL`),
    check('packages_status_check', sql`${table.status} in ('open', 'finalized', 'deleted')`),
  ],
);

/**
 * An Idempotency-Key sent with POST /packages: a retry with the same key and caller returns the package
 * that the first request created, instead of creating another. Removed when the package is deleted, by
 * the cascade when an open package is deleted and by the retention sweep.
 */
export const packageIdempotencyKeys = pgTable(
  'package_idempotency_keys',
  {
    createdBy: text('created_by').notNull(),
    idempotencyKey: text('idempotency_key').notNull(),
    /** SHA-256 hex of the RFC 8785 JSON of the validated request body, to reject the key with another body. */
    requestSha256Hex: text('request_sha256_hex').notNull(),
    packageId: uuid('package_id')
      .notNull()
      .references(() => packages.id, { onDelete: 'cascade' }),
    createdAt: createdAt(),
  },
  (table) => [primaryKey({ columns: [table.createdBy, table.idempotencyKey] }), index('package_idempotency_keys_package_idx').on(table.packageId)],
);

export const blobs = pgTable('blobs', {
  contentAddress: text('content_address').primaryKey(),
  sizeBytes: bigint('size_bytes', { mode: 'number' }).notNull(),
  sha256Hex: text('sha256_hex').notNull(),
  createdAt: createdAt(),
});

export const storageLocations = pgTable(
  'storage_locations',
  {
    contentAddress: text('content_address')
      .notNull()
      .references(() => blobs.contentAddress, { onDelete: 'cascade' }),
    backendId: text('backend_id').notNull(),
    objectKey: text('object_key').notNull(),
    retrievalTier: text('retrieval_tier').notNull(),
    status: text('status', { enum: ['ok', 'corrupt', 'missing'] }).notNull().default('ok'),
    verifiedAt: timestamp('verified_at', { withTimezone: true, mode: 'date' }),
    createdAt: createdAt(),
  },
  (table) => [
    uniqueIndex('storage_locations_blob_backend_idx').on(table.contentAddress, table.backendId),
    // GET /health counts the failed copies. This index contains only those, so the count reads no other row.
    index('storage_locations_failed_idx').on(table.contentAddress).where(sql`${table.status} <> 'ok'`),
  ],
);

export const files = pgTable(
  'files',
  {
    id: uuid('id').primaryKey(),
    packageId: uuid('package_id')
      .notNull()
      .references(() => packages.id, { onDelete: 'cascade' }),
    relativePath: text('relative_path').notNull(),
    mediaType: text('media_type').notNull(),
    sizeBytes: bigint('size_bytes', { mode: 'number' }).notNull(),
    digestAlgorithm: text('digest_algorithm').notNull().default('blake3'),
    digestPrimaryHex: text('digest_primary_hex').notNull(),
    digestSha256Hex: text('digest_sha256_hex').notNull(),
    contentAddress: text('content_address')
      .notNull()
      .references(() => blobs.contentAddress),
    createdAt: createdAt(),
  },
  (table) => [
    uniqueIndex('files_package_path_idx').on(table.packageId, table.relativePath),
    // Byte order, whatever the database's collation: the path checks find the files below a directory
    // with a range over this index instead of reading every file of the package.
    index('files_package_path_bytes_idx').on(table.packageId, sql`${table.relativePath} COLLATE "C"`),
    index('files_content_address_idx').on(table.contentAddress),
  ],
);

export const holds = pgTable(
  'holds',
  {
    id: uuid('id').primaryKey(),
    packageId: uuid('package_id')
      .notNull()
      .references(() => packages.id),
    reason: text('reason').notNull(),
    appliedBy: text('applied_by').notNull(),
    appliedAt: timestamp('applied_at', { withTimezone: true, mode: 'date' }).notNull().defaultNow(),
    releasedBy: text('released_by'),
    releasedAt: timestamp('released_at', { withTimezone: true, mode: 'date' }),
    releaseReason: text('release_reason'),
  },
  (table) => [index('holds_package_idx').on(table.packageId)],
);

/** One row holding the last assigned event sequence; its row lock orders event writers by commit. */
export const eventLogHead = pgTable('event_log_head', {
  id: smallint('id').primaryKey(),
  sequence: bigint('sequence', { mode: 'number' }).notNull(),
  // Chain digest of the event at `sequence` (server/integrity/event-chain.ts); null until the first event or the backfill.
  chainDigestHex: text('chain_digest_hex'),
});

export const events = pgTable(
  'events',
  {
    sequence: bigint('sequence', { mode: 'number' }).primaryKey(),
    createdAt: createdAt(),
    eventType: text('event_type').notNull(),
    subjectKind: text('subject_kind').notNull(),
    subjectId: text('subject_id').notNull(),
    actor: text('actor').notNull(),
    payload: bytea('payload').notNull(),
    payloadDigestHex: text('payload_digest_hex').notNull(),
    // BLAKE3 hash chain over the log, defined in server/integrity/event-chain.ts. It is null only in a
    // database upgraded from before the chain existed, until the backfill at start fills it in.
    chainDigestHex: text('chain_digest_hex'),
  },
  (table) => [
    // Event filters: subject_kind with subject_id (also a package's last event in GET /packages), either
    // alone, and an event_type prefix. A LIKE prefix can use a btree index only in the C collation.
    // NOTE: with (subject_kind, sequence) in place of events_subject_idx, GET /packages over 1,000,000
    // packages took 88 ms instead of 6 ms at the median (benchmark P5b after P5a). The plan was not examined.
    index('events_subject_idx').on(table.subjectKind, table.subjectId, table.sequence),
    index('events_subject_id_idx').on(table.subjectId, table.sequence),
    index('events_type_idx').on(sql`${table.eventType} COLLATE "C"`, table.sequence),
  ],
);

export const apiTokens = pgTable('api_tokens', {
  id: uuid('id').primaryKey(),
  name: text('name').notNull().unique(),
  tokenSha256Hex: text('token_sha256_hex').notNull().unique(),
  scopes: text('scopes').array().notNull(),
  createdAt: createdAt(),
  revokedAt: timestamp('revoked_at', { withTimezone: true, mode: 'date' }),
});

/** Console sessions: the cookie carries a random id whose SHA-256 is stored here. */
export const sessions = pgTable('sessions', {
  idSha256Hex: text('id_sha256_hex').primaryKey(),
  tokenId: uuid('token_id')
    .notNull()
    .references(() => apiTokens.id),
  createdAt: createdAt(),
  expiresAt: timestamp('expires_at', { withTimezone: true, mode: 'date' }).notNull(),
});

/** Unfinished tus uploads, reserved at creation so a path has at most one upload in flight. */
export const uploads = pgTable(
  'uploads',
  {
    id: text('id').primaryKey(),
    packageId: uuid('package_id')
      .notNull()
      .references(() => packages.id, { onDelete: 'cascade' }),
    relativePath: text('relative_path').notNull(),
    mediaType: text('media_type').notNull(),
    uploadLength: bigint('upload_length', { mode: 'number' }),
    createdBy: text('created_by').notNull(),
    createdAt: createdAt(),
    expiresAt: timestamp('expires_at', { withTimezone: true, mode: 'date' }).notNull(),
    completedAt: timestamp('completed_at', { withTimezone: true, mode: 'date' }),
    fileId: uuid('file_id'),
    terminated: boolean('terminated').notNull().default(false),
    hashedOffset: bigint('hashed_offset', { mode: 'number' }).notNull().default(0),
    attempt: integer('attempt').notNull().default(0),
  },
  (table) => [
    uniqueIndex('uploads_open_path_idx')
      .on(table.packageId, table.relativePath)
      .where(sql`${table.completedAt} is null and ${table.terminated} = false`),
  ],
);
