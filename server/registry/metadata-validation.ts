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
import { findSameValueCycle } from './schema-recursion';

/**
 * Slugs of metadata schemas: lowercase letters, digits, ".", "_" or "-", starting with a letter or digit, at
 * most 128 characters. The `-` is escaped because Chromium compiles an HTML `pattern` attribute with the `v`
 * flag, which rejects an unescaped `-` as a literal in a character class.
 */
export const SCHEMA_SLUG_PATTERN = '^[a-z0-9][a-z0-9._\\-]{0,127}$';
export const SCHEMA_SLUG_RULE = 'lowercase letters, digits, ".", "_" or "-", starting with a letter or digit, at most 128 characters';

export type MetadataValidator = ValidateFunction;

/** Rule of a schema whose validation cannot end, at registration and at validation. */
export const SCHEMA_RECURSION_RULE = 'schema_recursion';

export type SchemaCompileResult =
  | { ok: true; validate: MetadataValidator }
  | { ok: false; rule: 'json_schema_2020_12' | typeof SCHEMA_RECURSION_RULE; message: string };

/** Values validated once after compiling, so a schema that overflows the stack on common input is rejected. */
const TRIAL_VALUES: unknown[] = [null, true, 0, 1.5, '', 'a', [], [0, 'a', {}], {}, { a: 0, b: [], c: {} }];

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
  // ownProperties makes `required`, `properties` and `dependentRequired` ignore inherited names such as
  // `constructor` and `toString`, which ajv otherwise counts as present in every object.
  return new Ajv2020({ allErrors: true, strict: false, validateFormats: false, ownProperties: true, code: { regExp: re2RegExp } });
}

/**
 * Compiles a JSON Schema (draft 2020-12), or returns why it cannot be used: ajv's message, or rule
 * `schema_recursion` for a schema whose validation would not end. That is a `$ref` or `$dynamicRef` cycle
 * that stays on the same value, or any schema that overflows the stack on one of a few small trial values.
 */
export function compileSchema(schema: unknown): SchemaCompileResult {
  if (schema === null || typeof schema !== 'object' || Array.isArray(schema)) {
    return { ok: false, rule: 'json_schema_2020_12', message: 'a metadata schema must be a JSON object' };
  }
  const cycle = findSameValueCycle(schema as Record<string, unknown>);
  if (cycle) {
    return {
      ok: false,
      rule: SCHEMA_RECURSION_RULE,
      message: `schema recursion too deep: ${cycle.join(' → ')} applies to the same value again without moving into a property or item, so validation never ends`,
    };
  }

  let validate: MetadataValidator;
  try {
    validate = newAjv().compile(schema);
  } catch (error) {
    if (error instanceof RangeError) {
      return { ok: false, rule: SCHEMA_RECURSION_RULE, message: `schema recursion too deep: compiling it overflowed the stack (${error.message})` };
    }
    return { ok: false, rule: 'json_schema_2020_12', message: (error as Error).message };
  }

  for (const value of TRIAL_VALUES) {
    try {
      validate(value);
    } catch (error) {
      if (!(error instanceof RangeError)) throw error;
      return {
        ok: false,
        rule: SCHEMA_RECURSION_RULE,
        message: `schema recursion too deep: validating ${JSON.stringify(value)} overflowed the stack (${error.message})`,
      };
    }
  }
  return { ok: true, validate };
}

/**
 * Validates metadata with a compiled schema and returns one issue per violation, empty when it is valid.
 * `field` is the path of the offending value below `metadata`, such as `metadata.build.steps[2]`; for a
 * missing or unexpected property it names that property. `rule` is the JSON Schema keyword that failed,
 * or `schema_recursion` when validation overflowed the stack, as a deeply nested value under a recursive
 * schema can.
 */
export function validateWithSchema(validate: MetadataValidator, metadata: unknown): ValidationIssue[] {
  let valid: boolean;
  try {
    valid = validate(metadata);
  } catch (error) {
    if (!(error instanceof RangeError)) throw error;
    return [{ field: 'metadata', rule: SCHEMA_RECURSION_RULE, message: `schema recursion too deep: validation overflowed the stack (${error.message})` }];
  }
  if (valid) return [];
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
