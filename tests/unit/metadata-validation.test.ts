import { describe, expect, it } from 'vitest';
import { pointerToPath } from '@/server/encoding/json-path';
import { compileSchema, validateWithSchema, type MetadataValidator } from '@/server/registry/metadata-validation';

function compiled(schema: unknown): MetadataValidator {
  const result = compileSchema(schema);
  if (!result.ok) throw new Error(`expected the schema to compile: ${result.message}`);
  return result.validate;
}

function compileError(schema: unknown): string {
  const result = compileSchema(schema);
  if (result.ok) throw new Error(`expected ${JSON.stringify(schema)} not to compile`);
  return result.message;
}

describe('compileSchema', () => {
  it('rejects an unknown type with ajv message', () => {
    expect(compileError({ type: 'no-such-type' })).toContain('data/type must be equal to one of the allowed values');
  });

  it('rejects lookahead patterns under RE2', () => {
    expect(compileError({ type: 'string', pattern: '^(?=a)a$' })).not.toBe('');
  });

  it('rejects schemas that are not objects', () => {
    for (const schema of [null, [], 'string', 1]) {
      expect(compileError(schema)).toBe('a metadata schema must be a JSON object');
    }
  });

  it('accepts draft 2020-12 keywords', () => {
    expect(compileSchema({ type: 'array', prefixItems: [{ type: 'string' }], unevaluatedItems: false }).ok).toBe(true);
  });
});

describe('validateWithSchema', () => {
  const schema = {
    type: 'object',
    required: ['commit'],
    additionalProperties: false,
    properties: {
      commit: { type: 'string', pattern: '^[0-9a-f]{7,40}$' },
      steps: { type: 'array', items: { type: 'object', properties: { ms: { type: 'integer' } } } },
      'build.id': { type: 'integer' },
    },
  };

  it('returns no issues for valid metadata', () => {
    expect(validateWithSchema(compiled(schema), { commit: 'abc1234', steps: [{ ms: 3 }], 'build.id': 7 })).toEqual([]);
  });

  it('names the path and keyword of each violation', () => {
    const issues = validateWithSchema(compiled(schema), { commit: 'XYZ', steps: [{ ms: 1 }, { ms: 'slow' }], 'build.id': 1.5 });
    expect(issues.map(({ field, rule }) => `${field} ${rule}`)).toEqual([
      'metadata.commit pattern',
      'metadata.steps[1].ms type',
      'metadata["build.id"] type',
    ]);
    expect(issues[0].message).toBe('must match pattern "^[0-9a-f]{7,40}$"');
  });

  it('points required and additional properties at the property', () => {
    const issues = validateWithSchema(compiled(schema), { extra: true });
    expect(issues.map(({ field, rule }) => `${field} ${rule}`)).toEqual(['metadata.commit required', 'metadata.extra additionalProperties']);
  });

  it('matches nested quantifiers in linear time', () => {
    const validate = compiled({ type: 'object', properties: { tag: { type: 'string', pattern: '^(a+)+$' } } });
    const started = performance.now();
    const issues = validateWithSchema(validate, { tag: `${'a'.repeat(40)}!` });
    expect(issues.map((issue) => issue.rule)).toEqual(['pattern']);
    // A backtracking engine needs about 2^40 steps here; one second is far above RE2's time.
    expect(performance.now() - started).toBeLessThan(1_000);
  });
});

describe('pointerToPath', () => {
  it('reads digit segments as indexes only in arrays', () => {
    expect(pointerToPath('metadata', '/list/0', { list: ['x'] })).toBe('metadata.list[0]');
    expect(pointerToPath('metadata', '/map/0', { map: { '0': 'x' } })).toBe('metadata.map["0"]');
  });

  it('unescapes ~0 and ~1', () => {
    expect(pointerToPath('metadata', '/a~1b/c~0d', {})).toBe('metadata["a/b"]["c~d"]');
  });

  it('returns the root for the empty pointer', () => {
    expect(pointerToPath('metadata', '', {})).toBe('metadata');
  });
});
