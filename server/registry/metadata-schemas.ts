import { asc, eq, gt } from 'drizzle-orm';
import { z } from 'zod';
import { queryInteger } from '../http/body';
import type { Executor } from '@/db/client';
import { metadataSchemas } from '@/db/schema';
import { ConflictError, NotFoundError, ValidationError } from '../errors';
import { assertCanonicalizable } from '../encoding/jcs';
import { appendEvent } from './events';
import {
  compileSchema,
  SCHEMA_RECURSION_RULE,
  SCHEMA_SLUG_PATTERN,
  SCHEMA_SLUG_RULE,
  validateWithSchema,
  type MetadataValidator,
} from './metadata-validation';

export const SchemaSlug = z
  .string()
  .regex(new RegExp(SCHEMA_SLUG_PATTERN), SCHEMA_SLUG_RULE);

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
  .object({ limit: queryInteger(1, 500, 100), cursor: z.string().max(256).optional() })
  .strict();

const validators = new Map<string, MetadataValidator>();

/**
 * Compiles a JSON Schema (draft 2020-12) for registration; a schema that does not compile, or whose
 * validation would not end, is a 400 with the reason.
 */
export function compileMetadataSchema(schema: unknown): MetadataValidator {
  const compiled = compileSchema(schema);
  if (compiled.ok) return compiled.validate;
  const detail = compiled.rule === SCHEMA_RECURSION_RULE ? 'The JSON Schema recurses without end.' : 'The JSON Schema does not compile.';
  throw new ValidationError(detail, [{ field: 'schema', rule: compiled.rule, message: compiled.message }]);
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

/**
 * Validates metadata against a registered schema; throws 400 listing every violation. A stored schema that
 * can no longer be compiled (one registered before a check was added) is a 400 naming the schema.
 */
export async function validateMetadata(db: Executor, slug: string, metadata: unknown): Promise<void> {
  let validate = validators.get(slug);
  if (!validate) {
    const rows = await db.select().from(metadataSchemas).where(eq(metadataSchemas.slug, slug));
    if (rows.length === 0) {
      throw new ValidationError(`Unknown metadata schema "${slug}".`, [
        { field: 'metadata_schema', rule: 'exists', message: `no metadata schema is registered with slug "${slug}"` },
      ]);
    }
    const compiled = compileSchema(rows[0].schema);
    if (!compiled.ok) {
      throw new ValidationError(`Metadata schema "${slug}" cannot be used to validate metadata: ${compiled.message}.`, [
        { field: 'metadata_schema', rule: compiled.rule, message: compiled.message },
      ]);
    }
    validate = compiled.validate;
    validators.set(slug, validate);
  }
  const issues = validateWithSchema(validate, metadata);
  if (issues.some((issue) => issue.rule === SCHEMA_RECURSION_RULE)) {
    throw new ValidationError(`Metadata schema "${slug}" recursed too deeply to validate the metadata (schema recursion too deep).`, issues);
  }
  if (issues.length > 0) throw new ValidationError(`The metadata does not match schema "${slug}".`, issues);
}

function toRecord(row: typeof metadataSchemas.$inferSelect): MetadataSchemaRecord {
  return { slug: row.slug, schema: row.schema, created_by: row.createdBy, created_at: row.createdAt.toISOString() };
}
