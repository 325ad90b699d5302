/**
 * Compiles registered metadata schemas (JSON Schema draft 2020-12) with ajv and turns ajv's errors into
 * validation issues. The console imports this module too, so the browser checks metadata with the same
 * ajv options and RE2 patterns as the server and the two cannot disagree. It must therefore import
 * nothing from Node.js, Next.js or the database.
 */
import Ajv2020, { type ErrorObject, type ValidateFunction } from 'ajv/dist/2020.js';
import { RE2JS } from 're2js';
import type { ValidationIssue } from '../errors';
import { appendKey, pointerToPath } from '../encoding/json-path';

/** Slugs of metadata schemas: lowercase letters, digits, ".", "_" or "-", starting with a letter or digit, at most 128 characters. */
export const SCHEMA_SLUG_PATTERN = '^[a-z0-9][a-z0-9._-]{0,127}$';
export const SCHEMA_SLUG_RULE = 'lowercase letters, digits, ".", "_" or "-", starting with a letter or digit, at most 128 characters';

export type MetadataValidator = ValidateFunction;

export type SchemaCompileResult = { ok: true; validate: MetadataValidator } | { ok: false; message: string };

/**
 * Compiles `pattern` and `patternProperties` with RE2 (the re2js port), which matches in linear time. A
 * schema is registered by an admin but then runs on every write token's metadata, and JavaScript's
 * backtracking RegExp takes exponential time on patterns such as `(a+)+$`. RE2 rejects backreferences and
 * lookaround, so a schema using them fails to compile.
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

/** Compiles a JSON Schema (draft 2020-12), or returns ajv's message when it does not compile. */
export function compileSchema(schema: unknown): SchemaCompileResult {
  if (schema === null || typeof schema !== 'object' || Array.isArray(schema)) {
    return { ok: false, message: 'a metadata schema must be a JSON object' };
  }
  try {
    return { ok: true, validate: newAjv().compile(schema) };
  } catch (error) {
    return { ok: false, message: (error as Error).message };
  }
}

/**
 * Validates metadata with a compiled schema and returns one issue per violation, empty when it is valid.
 * `field` is the path of the offending value below `metadata`, such as `metadata.build.steps[2]`; for a
 * missing or unexpected property it names that property. `rule` is the JSON Schema keyword that failed.
 */
export function validateWithSchema(validate: MetadataValidator, metadata: unknown): ValidationIssue[] {
  if (validate(metadata)) return [];
  return (validate.errors ?? []).map((error) => ({
    field: issueField(error, metadata),
    rule: error.keyword,
    message: error.message ?? 'is invalid',
  }));
}

function issueField(error: ErrorObject, metadata: unknown): string {
  const path = pointerToPath('metadata', error.instancePath, metadata);
  const params = error.params as Record<string, unknown>;
  // ajv reports these at the enclosing object; the property itself is the field to point at.
  const property = params.missingProperty ?? params.additionalProperty ?? params.unevaluatedProperty;
  return typeof property === 'string' ? appendKey(path, property) : path;
}
