import { describe, expect, it } from 'vitest';
import { pointerToPath } from '@/server/encoding/json-path';
import { compileSchema, SCHEMA_SLUG_PATTERN, validateWithSchema, type MetadataValidator } from '@/server/registry/metadata-validation';

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
    // A backtracking engine needs about 2^40 steps here, so the test would run into its time limit.
    const issues = validateWithSchema(validate, { tag: `${'a'.repeat(40)}!` });
    expect(issues.map((issue) => issue.rule)).toEqual(['pattern']);
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

describe('schema recursion', () => {
  /** Builds {"c": {"c": … {} …}} nested `depth` levels deep without recursion. */
  function nested(depth: number): unknown {
    let value: unknown = {};
    for (let level = 0; level < depth; level++) value = { c: value };
    return value;
  }

  function rejection(schema: unknown): { rule: string; message: string } {
    const result = compileSchema(schema);
    if (result.ok) throw new Error(`expected ${JSON.stringify(schema)} to be rejected`);
    return { rule: result.rule, message: result.message };
  }

  it('rejects a $ref to the root', () => {
    const { rule, message } = rejection({ $ref: '#' });
    expect(rule).toBe('schema_recursion');
    expect(message).toContain('schema recursion too deep: # → #');
  });

  it('rejects a $dynamicRef to its own anchor', () => {
    const { rule, message } = rejection({ $dynamicAnchor: 'x', $dynamicRef: '#x' });
    expect(rule).toBe('schema_recursion');
    expect(message).toContain('schema recursion too deep');
  });

  it('rejects cycles through $defs and same-value keywords', () => {
    const cycles = [
      { $defs: { a: { $ref: '#/$defs/a' } }, $ref: '#/$defs/a' },
      { $defs: { a: { allOf: [{ $ref: '#/$defs/b' }] }, b: { anyOf: [{ type: 'string' }, { $ref: '#/$defs/a' }] } }, $ref: '#/$defs/a' },
      { type: 'object', if: { required: ['deep'] }, then: { $ref: '#' } },
      { $defs: { 'a/b': { not: { $ref: '#/$defs/a~1b' } } }, properties: { x: { $ref: '#/$defs/a~1b' } } },
      { $defs: { a: { $anchor: 'loop', oneOf: [{ $ref: '#loop' }] } } },
      { dependentSchemas: { p: { $ref: '#' } } },
    ];
    for (const schema of cycles) {
      expect(rejection(schema).rule, JSON.stringify(schema)).toBe('schema_recursion');
    }
  });

  it('accepts recursion into properties and items', () => {
    const trees = [
      { type: 'object', properties: { c: { $ref: '#' } } },
      { type: 'array', items: { $ref: '#' } },
      { $defs: { node: { type: 'object', additionalProperties: { $ref: '#/$defs/node' } } }, $ref: '#/$defs/node' },
      { $dynamicAnchor: 'node', type: 'object', properties: { children: { type: 'array', items: { $dynamicRef: '#node' } } } },
    ];
    for (const schema of trees) {
      expect(compileSchema(schema).ok, JSON.stringify(schema)).toBe(true);
    }
  });

  it('reports stack overflow during validation as an issue', () => {
    const validate = compiled({ type: 'object', properties: { c: { $ref: '#' } } });
    expect(validateWithSchema(validate, nested(50))).toEqual([]);

    const issues = validateWithSchema(validate, nested(200_000));
    expect(issues).toHaveLength(1);
    expect(issues[0].field).toBe('metadata');
    expect(issues[0].rule).toBe('schema_recursion');
    expect(issues[0].message).toContain('schema recursion too deep');
  });
});

describe('inherited property names', () => {
  it('requires constructor and toString as own properties', () => {
    const validate = compiled({ type: 'object', required: ['constructor', 'toString'] });
    const issues = validateWithSchema(validate, {});
    expect(issues.map(({ field, rule }) => `${field} ${rule}`)).toEqual(['metadata.constructor required', 'metadata.toString required']);
    expect(validateWithSchema(validate, JSON.parse('{"constructor": 1, "toString": 2}'))).toEqual([]);
  });

  it('ignores inherited names in properties', () => {
    const validate = compiled({ type: 'object', properties: { constructor: { type: 'string' } } });
    expect(validateWithSchema(validate, {})).toEqual([]);
    expect(validateWithSchema(validate, { a: 1 })).toEqual([]);
    const issues = validateWithSchema(validate, JSON.parse('{"constructor": 1}'));
    expect(issues.map(({ field, rule }) => `${field} ${rule}`)).toEqual(['metadata.constructor type']);
  });

  it('ignores inherited names in dependentRequired', () => {
    const validate = compiled({ type: 'object', dependentRequired: { toString: ['x'] } });
    expect(validateWithSchema(validate, {})).toEqual([]);
    const issues = validateWithSchema(validate, JSON.parse('{"toString": "own"}'));
    expect(issues.map(({ field, rule }) => `${field} ${rule}`)).toEqual(['metadata.x dependentRequired']);
  });
});

describe('SCHEMA_SLUG_PATTERN', () => {
  it('compiles as an HTML pattern attribute', () => {
    // Chromium compiles a `pattern` attribute as ^(?:pattern)$ with the v flag.
    const htmlPattern = new RegExp(`^(?:${SCHEMA_SLUG_PATTERN})$`, 'v');
    for (const slug of ['a', 'build-info', 'v1.2_x', 'a'.repeat(128)]) expect(htmlPattern.test(slug), slug).toBe(true);
    for (const slug of ['', '-a', 'A', 'a/b', 'a'.repeat(129)]) expect(htmlPattern.test(slug), slug).toBe(false);
  });

  it('matches the same slugs without the v flag', () => {
    const serverPattern = new RegExp(SCHEMA_SLUG_PATTERN);
    for (const slug of ['a', 'build-info', 'v1.2_x']) expect(serverPattern.test(slug), slug).toBe(true);
    for (const slug of ['', '-a', 'a b', 'a\\-']) expect(serverPattern.test(slug), slug).toBe(false);
  });
});
