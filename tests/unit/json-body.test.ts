import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { assertCanonicalizable } from '@/server/encoding/jcs';
import { ValidationError } from '@/server/errors';
import { parseJsonBody } from '@/server/http/body';
import { bodySizeIssue, findDuplicateKey, findProtoKey, jsonByteLength, MAX_JSON_BODY_BYTES, metadataSizeIssue } from '@/server/http/json-limits';

/** Returns `[[…[]…]]` nested `depth` levels deep. */
function nestedArrays(depth: number): string {
  return '['.repeat(depth) + ']'.repeat(depth);
}

function jsonRequest(text: string): Request {
  return new Request('http://127.0.0.1/api/v1/packages', { method: 'POST', headers: { 'content-type': 'application/json' }, body: text });
}

async function rejection(promise: Promise<unknown>): Promise<ValidationError> {
  const error = await promise.then(
    () => undefined,
    (thrown: unknown) => thrown,
  );
  if (!(error instanceof ValidationError)) throw new Error(`expected a ValidationError, got ${String(error)}`);
  return error;
}

const Body = z.object({ metadata: z.record(z.string(), z.unknown()) });

describe('parseJsonBody', () => {
  it('parses nesting deeper than the stack', async () => {
    for (const depth of [150, 1_500, 100_000]) {
      const body = await parseJsonBody(jsonRequest(`{"metadata":{"a":${nestedArrays(depth)}}}`), Body);
      expect(Array.isArray(body.metadata.a), `depth ${depth}`).toBe(true);

      const error = (() => {
        try {
          assertCanonicalizable(body.metadata, 'metadata');
        } catch (thrown) {
          return thrown as ValidationError;
        }
      })();
      expect(error?.fields.errors, `depth ${depth}`).toEqual([
        expect.objectContaining({ rule: 'max_depth', message: 'nests arrays and objects more than 100 levels deep.' }),
      ]);
    }
  });

  it('rejects a deep __proto__ key with its path', async () => {
    const text = `{"metadata":{"a":[${'['.repeat(5_000)}{"__proto__":{"x":1}}${']'.repeat(5_000)}]}}`;
    const error = await rejection(parseJsonBody(jsonRequest(text), Body));
    expect(error.message).toBe('The key "__proto__" is not allowed in request bodies.');
    const issues = error.fields.errors as { field: string; rule: string }[];
    expect(issues).toHaveLength(1);
    expect(issues[0].rule).toBe('no_proto_key');
    expect(issues[0].field).toBe(`metadata.a[0]${'[0]'.repeat(5_000)}.__proto__`);
  });

  it('rejects a repeated key with its path', async () => {
    const error = await rejection(parseJsonBody(jsonRequest('{"metadata":{"commit":"a","commit":"b"}}'), Body));
    expect(error.message).toBe('The key at metadata.commit appears more than once in its object; JSON.parse would keep only the last value.');
    expect(error.fields.errors).toEqual([expect.objectContaining({ field: 'metadata.commit', rule: 'unique_keys' })]);
  });

  it('still rejects invalid JSON', async () => {
    const error = await rejection(parseJsonBody(jsonRequest('{"metadata": {'), Body));
    expect(error.message).toBe('The request body is not valid JSON.');
  });
});

describe('findProtoKey', () => {
  it('returns undefined without the key', () => {
    expect(findProtoKey(JSON.parse('{"a":[{"b":{"constructor":1}}]}'), 'metadata')).toBeUndefined();
  });

  it('names the key below the root', () => {
    expect(findProtoKey(JSON.parse('{"__proto__":{}}'), 'metadata')).toBe('metadata.__proto__');
    expect(findProtoKey(JSON.parse('{"a b":[0,{"__proto__":1}]}'), 'schema')).toBe('schema["a b"][1].__proto__');
    expect(findProtoKey(JSON.parse('{"x":{"__proto__":1}}'), '')).toBe('x.__proto__');
  });
});

describe('findDuplicateKey', () => {
  it.each([
    ['{"a":1,"b":2}'],
    ['{"a":{"a":1},"b":[{"a":1},{"a":2}]}'],
    ['{"a\\"b":1,"a":2,"a\\\\":3}'],
    ['{"{\\"a\\":1,\\"a\\":2}":"[,]"}'],
    ['[1,"a",{"a":1}]'],
    ['"a"'],
  ])('accepts unique names in %s', (text) => {
    JSON.parse(text);
    expect(findDuplicateKey(text, '')).toBeUndefined();
  });

  it.each([
    ['{"a":1,"a":2}', 'metadata', 'metadata.a'],
    ['{"a":1,"\\u0061":2}', '', 'a'],
    ['{"x":[0,{"y":1,"z":[],"y":2}]}', 'metadata', 'metadata.x[1].y'],
    ['{"a b":{"c":1, "c" :2}}', '', '["a b"].c'],
    ['{"s":"\\"}{\\"","t":{},"s":1}', '', 's'],
  ])('finds the repeated name in %s', (text, root, path) => {
    JSON.parse(text);
    expect(findDuplicateKey(text, root)).toBe(path);
  });

  it('scans nesting deeper than the stack', () => {
    const depth = 100_000;
    const text = `{"a":${'['.repeat(depth)}{"k":1,"k":2}${']'.repeat(depth)}}`;
    JSON.parse(text);
    expect(findDuplicateKey(text, '')).toBe(`a${'[0]'.repeat(depth)}.k`);
  });
});

describe('size limits', () => {
  it('measures JSON as UTF-8 bytes', () => {
    expect(jsonByteLength({ a: 'é' })).toBe(10);
    expect(jsonByteLength({ a: '😀' })).toBe(12);
  });

  it('allows metadata at the limit', () => {
    const metadata = { a: 'x'.repeat(100 - jsonByteLength({ a: '' })) };
    expect(jsonByteLength(metadata)).toBe(100);
    expect(metadataSizeIssue(metadata, 100)).toBeUndefined();

    const over = metadataSizeIssue({ ...metadata, b: 1 }, 100);
    expect(over?.issue.rule).toBe('max_bytes');
    expect(over?.issue.field).toBe('metadata');
    expect(over?.detail).toBe('The metadata is 106 bytes; the limit is 100.');
  });

  it('rejects a request body over 1 MiB', () => {
    expect(MAX_JSON_BODY_BYTES).toBe(1_048_576);
    const fits = { slug: 's', schema: { description: 'x'.repeat(MAX_JSON_BODY_BYTES - jsonByteLength({ slug: 's', schema: { description: '' } })) } };
    expect(bodySizeIssue(fits)).toBeUndefined();

    const over = bodySizeIssue({ ...fits, slug: 'st' });
    expect(over?.rule).toBe('max_bytes');
    expect(over?.message).toBe('the request would be 1048577 bytes; the server accepts at most 1048576 bytes');
  });
});
