import Ajv2020, { type ValidateFunction } from 'ajv/dist/2020.js';
import { RE2JS } from 're2js';
import { asc, eq, gt } from 'drizzle-orm';
import { z } from 'zod';
import type { Executor } from '@/db/client';
import { metadataSchemas } from '@/db/schema';
import { ConflictError, NotFoundError, ValidationError } from '../errors';
import { assertCanonicalizable } from '../encoding/jcs';
import { appendEvent } from './events';

export const SchemaSlug = z
  .string()
  .regex(/^[a-z0-9][a-z0-9._-]{0,127}$/, 'lowercase letters, digits, ".", "_" or "-", starting with a letter or digit, at most 128 characters');

export const RegisterMetadataSchema = z
  .object({
    slug: SchemaSlug,
    schema: z.record(z.string(), z.unknown()),
  })
  .strict();
export type RegisterMetadataSchema = z.infer<typeof RegisterMetadataSchema>;

/** A registered metadata schema as the API returns it. */
export const MetadataSchemaRecord = z.object({
  slug: z.string(),
  schema: z.unknown().meta({ description: 'The JSON Schema (draft 2020-12) as registered.' }),
  created_by: z.string(),
  created_at: z.iso.datetime(),
});
export type MetadataSchemaRecord = z.infer<typeof MetadataSchemaRecord>;

/** One page of GET /metadata-schemas, ordered by slug. */
export const MetadataSchemaPage = z.object({ metadata_schemas: z.array(MetadataSchemaRecord), next_cursor: z.string().nullable() });
export type MetadataSchemaPage = z.infer<typeof MetadataSchemaPage>;

export const ListMetadataSchemasQuery = z
  .object({ limit: z.coerce.number().int().min(1).max(500).default(100), cursor: z.string().max(256).optional() })
  .strict();

const validators = new Map<string, ValidateFunction>();

/**
 * Compiles `pattern` and `patternProperties` with RE2 (the re2js port), which matches in linear time. A
 * schema is registered by an admin but then runs on every write token's metadata, and JavaScript's
 * backtracking RegExp takes exponential time on patterns such as `(a+)+$`. RE2 rejects backreferences and
 * lookaround, so a schema using them fails to compile with a 400.
 */
function re2RegExp(pattern: string, flags: string): { test(value: string): boolean; toString(): string } {
  const compiled = RE2JS.compile(pattern);
  // ajv caches compiled patterns by toString(), so it must differ per pattern as RegExp's does.
  return { test: (value) => compiled.matcher(value).find(), toString: () => `/${pattern}/${flags}` };
}
re2RegExp.code = 'RE2JS';

function newAjv(): Ajv2020 {
  // Formats are not validated (no ajv-formats); `format` keywords are annotations only, as in draft 2020-12.
  return new Ajv2020({ allErrors: true, strict: false, validateFormats: false, code: { regExp: re2RegExp } });
}

/** Compiles a JSON Schema (draft 2020-12); a schema that does not compile is a 400 with ajv's message. */
export function compileMetadataSchema(schema: unknown): ValidateFunction {
  try {
    return newAjv().compile(schema as object);
  } catch (error) {
    throw new ValidationError('The JSON Schema does not compile.', [
      { field: 'schema', rule: 'json_schema_2020_12', message: (error as Error).message },
    ]);
  }
}

/** Registers an immutable schema; registering an existing slug again is a 409. */
export async function registerMetadataSchema(
  db: Executor,
  input: RegisterMetadataSchema,
  actor: string,
): Promise<MetadataSchemaRecord> {
  assertCanonicalizable(input.schema, 'schema');
  compileMetadataSchema(input.schema);
  const createdAt = new Date();

  await db.transaction(async (tx) => {
    const inserted = await tx
      .insert(metadataSchemas)
      .values({ slug: input.slug, schema: input.schema, createdBy: actor, createdAt })
      .onConflictDoNothing()
      .returning({ slug: metadataSchemas.slug });
    if (inserted.length === 0) {
      throw new ConflictError(`A metadata schema with slug "${input.slug}" already exists; schemas are immutable, so register a new slug.`, {
        slug: input.slug,
      });
    }
    await appendEvent(tx, {
      eventType: 'metadata_schema.registered',
      subjectKind: 'metadata_schema',
      subjectId: input.slug,
      actor,
      payload: { slug: input.slug, schema: input.schema },
    });
  });
  return { slug: input.slug, schema: input.schema, created_by: actor, created_at: createdAt.toISOString() };
}

export async function getMetadataSchema(db: Executor, slug: string): Promise<MetadataSchemaRecord> {
  const rows = await db.select().from(metadataSchemas).where(eq(metadataSchemas.slug, slug));
  if (rows.length === 0) throw new NotFoundError('Metadata schema', slug);
  return toRecord(rows[0]);
}

export async function listMetadataSchemas(db: Executor, options: { after?: string; limit: number }) {
  const rows = await db
    .select()
    .from(metadataSchemas)
    .where(options.after ? gt(metadataSchemas.slug, options.after) : undefined)
    .orderBy(asc(metadataSchemas.slug))
    .limit(options.limit + 1);
  const page = rows.slice(0, options.limit).map(toRecord);
  return { items: page, nextAfter: rows.length > options.limit ? page[page.length - 1].slug : null };
}

/** Validates metadata against a registered schema; throws 400 listing every violation. */
export async function validateMetadata(db: Executor, slug: string, metadata: unknown): Promise<void> {
  let validate = validators.get(slug);
  if (!validate) {
    const rows = await db.select().from(metadataSchemas).where(eq(metadataSchemas.slug, slug));
    if (rows.length === 0) {
      throw new ValidationError(`Unknown metadata schema "${slug}".`, [
        { field: 'metadata_schema', rule: 'exists', message: `no metadata schema is registered with slug "${slug}"` },
      ]);
    }
    validate = compileMetadataSchema(rows[0].schema);
    validators.set(slug, validate);
  }
  if (validate(metadata)) return;
  throw new ValidationError(`The metadata does not match schema "${slug}".`, (validate.errors ?? []).map((error) => ({
    field: `metadata${error.instancePath.replaceAll('/', '.')}`,
    rule: error.keyword,
    message: error.message ?? 'invalid',
  })));
}

function toRecord(row: typeof metadataSchemas.$inferSelect): MetadataSchemaRecord {
  return { slug: row.slug, schema: row.schema, created_by: row.createdBy, created_at: row.createdAt.toISOString() };
}
