'use client';

import { useMemo } from 'react';
import { canonicalizationIssues } from '@/server/encoding/jcs';
import type { ValidationIssue } from '@/server/errors';
import { duplicateKeyIssue, findDuplicateKey, findProtoKey, metadataSizeIssue, protoKeyIssue } from '@/server/http/json-limits';
import { compileSchema, SCHEMA_RECURSION_RULE, validateWithSchema } from '@/server/registry/metadata-validation';
import type { MetadataSchemaRecord } from './api';
import { describeJsonError, parseJsonText } from './json-text';

/** The result of checking the create form's metadata text before it is sent. */
export interface MetadataCheck {
  /** The parsed object, or undefined while the text is not a JSON object. */
  value: Record<string, unknown> | undefined;
  /** The reason the text is not a JSON object, or ''. */
  syntaxError: string;
  /**
   * Issues the server would reject the request for: a `__proto__` key, a repeated key, values it cannot
   * store (such as 1e999, which JSON.parse reads as Infinity) and metadata over its size limit. Then
   * violations of the chosen schema follow. Empty while the text does not parse.
   */
  issues: ValidationIssue[];
  /** ajv's message when the chosen schema does not compile in the browser, or ''. The server then decides alone. */
  schemaError: string;
}

/**
 * Parses the metadata text and validates it against the chosen schema with the server's own ajv setup
 * (server/registry/metadata-validation.ts). The schema is compiled once per selection, not per keystroke.
 */
export function useMetadataCheck(text: string, schema: MetadataSchemaRecord | undefined, maxMetadataBytes: number): MetadataCheck {
  const compiled = useMemo(() => (schema ? compileSchema(schema.schema) : undefined), [schema]);

  return useMemo(() => {
    const schemaError = compiled && !compiled.ok && compiled.rule !== SCHEMA_RECURSION_RULE ? compiled.message : '';
    if (text.trim() === '') return { value: {}, syntaxError: '', issues: check(compiled, {}), schemaError };

    const parsed = parseJsonText(text);
    if (!parsed.ok) return { value: undefined, syntaxError: `Metadata is not valid JSON at ${describeJsonError(parsed)}.`, issues: [], schemaError };
    if (parsed.value === null || typeof parsed.value !== 'object' || Array.isArray(parsed.value)) {
      return { value: undefined, syntaxError: 'Metadata must be a JSON object, such as {"build": 42}.', issues: [], schemaError };
    }
    const value = parsed.value as Record<string, unknown>;
    const protoKey = findProtoKey(value, 'metadata');
    const duplicateKey = findDuplicateKey(text, 'metadata');
    const tooLarge = metadataSizeIssue(value, maxMetadataBytes);
    const issues = [
      ...(protoKey === undefined ? [] : [protoKeyIssue(protoKey)]),
      ...(duplicateKey === undefined ? [] : [duplicateKeyIssue(duplicateKey)]),
      ...canonicalizationIssues(value, 'metadata'),
      ...(tooLarge ? [tooLarge.issue] : []),
      ...check(compiled, value),
    ];
    return { value, syntaxError: '', issues, schemaError };
  }, [text, compiled, maxMetadataBytes]);
}

/** Validates against the compiled schema. A schema whose validation never ends is an issue, as the server rejects it too. */
function check(compiled: ReturnType<typeof compileSchema> | undefined, value: Record<string, unknown>): ValidationIssue[] {
  if (compiled === undefined) return [];
  if (!compiled.ok) {
    return compiled.rule === SCHEMA_RECURSION_RULE ? [{ field: 'metadata_schema', rule: compiled.rule, message: compiled.message }] : [];
  }
  return validateWithSchema(compiled.validate, value);
}
