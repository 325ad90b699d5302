import { describe, expect, it } from 'vitest';
import {
  compareCborKeys,
  decodeCbor,
  encodeArrayHeader,
  encodeCanonicalCbor,
  encodeMapHeader,
} from '../../server/encoding/cbor';
import { assertCanonicalizable, canonicalJson, MAX_JSON_DEPTH } from '../../server/encoding/jcs';
import { ValidationError } from '../../server/errors';

function toHex(bytes: Uint8Array): string {
  return Buffer.from(bytes).toString('hex');
}

function fromHex(hex: string): Uint8Array {
  return new Uint8Array(Buffer.from(hex, 'hex'));
}

function concatBytes(parts: Uint8Array[]): Uint8Array {
  return new Uint8Array(Buffer.concat(parts));
}

/** Builds an IEEE 754 double from its big-endian bit pattern in hex. */
function doubleFromBits(bits: string): number {
  return Buffer.from(bits, 'hex').readDoubleBE(0);
}

function captureValidationError(action: () => void): ValidationError {
  try {
    action();
  } catch (error) {
    if (error instanceof ValidationError) return error;
    throw error;
  }
  throw new Error('expected a ValidationError, but nothing was thrown');
}

describe('encodeCanonicalCbor', () => {
  // Examples from RFC 8949 Appendix A that are valid deterministic encodings.
  const appendixA: [string, unknown, string][] = [
    ['0', 0, '00'],
    ['1', 1, '01'],
    ['10', 10, '0a'],
    ['23', 23, '17'],
    ['24', 24, '1818'],
    ['25', 25, '1819'],
    ['100', 100, '1864'],
    ['1000', 1000, '1903e8'],
    ['1000000', 1000000, '1a000f4240'],
    ['1000000000000', 1000000000000, '1b000000e8d4a51000'],
    ['18446744073709551615n', 18446744073709551615n, '1bffffffffffffffff'],
    ['-18446744073709551616n', -18446744073709551616n, '3bffffffffffffffff'],
    ['-1', -1, '20'],
    ['-10', -10, '29'],
    ['-100', -100, '3863'],
    ['-1000', -1000, '3903e7'],
    ['1.1', 1.1, 'fb3ff199999999999a'],
    ['1.5', 1.5, 'f93e00'],
    ['3.4028234663852886e+38', 3.4028234663852886e38, 'fa7f7fffff'],
    ['1.0e+300', 1.0e300, 'fb7e37e43c8800759c'],
    ['5.960464477539063e-8', 5.960464477539063e-8, 'f90001'],
    ['0.00006103515625', 0.00006103515625, 'f90400'],
    ['-4.1', -4.1, 'fbc010666666666666'],
    ['Infinity', Infinity, 'f97c00'],
    ['NaN', NaN, 'f97e00'],
    ['-Infinity', -Infinity, 'f9fc00'],
    ['false', false, 'f4'],
    ['true', true, 'f5'],
    ['null', null, 'f6'],
    ["h''", new Uint8Array(0), '40'],
    ["h'01020304'", Uint8Array.of(1, 2, 3, 4), '4401020304'],
    ['""', '', '60'],
    ['"a"', 'a', '6161'],
    ['"IETF"', 'IETF', '6449455446'],
    ['"\\"\\\\"', '"\\', '62225c'],
    ['"\\u00fc"', '\u00fc', '62c3bc'],
    ['"\\u6c34"', '\u6c34', '63e6b0b4'],
    ['"\\ud800\\udd51"', '\ud800\udd51', '64f0908591'],
    ['[]', [], '80'],
    ['[1, 2, 3]', [1, 2, 3], '83010203'],
    ['[1, [2, 3], [4, 5]]', [1, [2, 3], [4, 5]], '8301820203820405'],
    [
      '[1, ..., 25]',
      Array.from({ length: 25 }, (_, index) => index + 1),
      '98190102030405060708090a0b0c0d0e0f101112131415161718181819',
    ],
    ['{}', {}, 'a0'],
    ['{1: 2, 3: 4}', new Map([[1, 2], [3, 4]]), 'a201020304'],
    ['{"a": 1, "b": [2, 3]}', { a: 1, b: [2, 3] }, 'a26161016162820203'],
    ['["a", {"b": "c"}]', ['a', { b: 'c' }], '826161a161626163'],
    [
      '{"a": "A", ..., "e": "E"}',
      { a: 'A', b: 'B', c: 'C', d: 'D', e: 'E' },
      'a56161614161626142616361436164614461656145',
    ],
  ];

  it.each(appendixA)('RFC 8949 Appendix A %s', (_name, value, expected) => {
    expect(toHex(encodeCanonicalCbor(value))).toBe(expected);
  });

  // A JavaScript number carries no integer/float distinction, so cborg writes every safe integer as
  // a CBOR integer. These Appendix A floats therefore come out as the integers they equal.
  const integralFloats: [string, number, string, string][] = [
    ['0.0', 0.0, 'f90000', '00'],
    ['-0.0', -0.0, 'f98000', '00'],
    ['1.0', 1.0, 'f93c00', '01'],
    ['65504.0', 65504.0, 'f97bff', '19ffe0'],
    ['100000.0', 100000.0, 'fa47c35000', '1a000186a0'],
    ['-4.0', -4.0, 'f9c400', '23'],
  ];

  it.each(integralFloats)('integral float %s as integer', (_name, value, appendixHex, expected) => {
    expect(expected).not.toBe(appendixHex);
    expect(toHex(encodeCanonicalCbor(value))).toBe(expected);
  });

  it('writes numbers above 2^53 as floats', () => {
    expect(toHex(encodeCanonicalCbor(2 ** 53))).toBe('fa5a000000');
    expect(toHex(encodeCanonicalCbor(2 ** 53 + 2))).toBe('fb4340000000000001');
  });

  it('writes bigints above 2^53 as integers', () => {
    expect(toHex(encodeCanonicalCbor(9007199254740993n))).toBe('1b0020000000000001');
  });

  it('sorts keys by encoded bytes in either input order', () => {
    const expected = 'a36162f94580617a0162616102';
    expect(toHex(encodeCanonicalCbor({ z: 1, aa: 2, b: 5.5 }))).toBe(expected);
    expect(toHex(encodeCanonicalCbor({ b: 5.5, aa: 2, z: 1 }))).toBe(expected);
  });

  it('sorts map keys bytewise, not length first', () => {
    // 24 encodes as 18 18 and -1 as 20: bytewise order puts 24 first although its encoding is longer.
    const map = new Map<number, string>([
      [-1, 'a'],
      [24, 'b'],
    ]);
    expect(toHex(encodeCanonicalCbor(map))).toBe('a218186162206161');
  });

  it('sorts integer keys before text keys', () => {
    const map = new Map<string | number, number>([
      ['b', 1],
      [1, 2],
    ]);
    expect(toHex(encodeCanonicalCbor(map))).toBe('a20102616201');
  });

  it('rejects a Date', () => {
    expect(() => encodeCanonicalCbor({ created_at: new Date(0) })).toThrow(TypeError);
    expect(() => encodeCanonicalCbor({ created_at: new Date(0) })).toThrow(/RFC 3339/);
  });

  it('rejects undefined in objects and arrays', () => {
    expect(() => encodeCanonicalCbor({ a: undefined })).toThrow(TypeError);
    expect(() => encodeCanonicalCbor([undefined])).toThrow(TypeError);
  });

  it('rejects bigints beyond 64 bits', () => {
    expect(() => encodeCanonicalCbor(18446744073709551616n)).toThrow();
  });

  it('returns bytes that later calls do not overwrite', () => {
    const first = encodeCanonicalCbor({ name: 'first', values: [1, 2, 3] });
    const firstHex = toHex(first);
    encodeCanonicalCbor({ name: 'a second, longer value', values: [4, 5, 6, 7, 8] });
    expect(toHex(first)).toBe(firstHex);
  });
});

describe('decodeCbor', () => {
  it('round-trips a nested document', () => {
    const document = { name: 'pkg', sizes: [0, 1, 65536], ratio: 0.5, tags: { a: true, b: null } };
    expect(decodeCbor(encodeCanonicalCbor(document))).toEqual(document);
  });

  it('returns integers beyond 2^53 as bigints', () => {
    expect(decodeCbor(fromHex('1bffffffffffffffff'))).toBe(18446744073709551615n);
  });

  it('rejects an integer in more bytes than needed', () => {
    expect(() => decodeCbor(fromHex('1817'))).toThrow(/more bytes than necessary/);
  });

  it('rejects indefinite lengths', () => {
    expect(() => decodeCbor(fromHex('9f01ff'))).toThrow(/indefinite/);
  });

  it('rejects repeated map keys', () => {
    expect(() => decodeCbor(fromHex('a2616101616102'))).toThrow(/repeat map key/);
  });

  it('rejects trailing bytes', () => {
    expect(() => decodeCbor(fromHex('0000'))).toThrow();
  });

  it('rejects tags and undefined', () => {
    expect(() => decodeCbor(fromHex('c11a514b67b0'))).toThrow(/tag/);
    expect(() => decodeCbor(fromHex('f7'))).toThrow(/undefined/);
  });

  it('keeps a __proto__ key as data', () => {
    const bytes = encodeCanonicalCbor(new Map([['__proto__', { polluted: true }]]));
    const decoded = decodeCbor(bytes) as Record<string, unknown>;
    expect(Object.getPrototypeOf(decoded)).toBe(Object.prototype);
    expect(Object.keys(decoded)).toEqual(['__proto__']);
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
  });
});

describe('CBOR streaming helpers', () => {
  const arrayHeaders: [number, string][] = [
    [0, '80'],
    [23, '97'],
    [24, '9818'],
    [255, '98ff'],
    [256, '990100'],
    [65535, '99ffff'],
    [65536, '9a00010000'],
    [4294967295, '9affffffff'],
    [4294967296, '9b0000000100000000'],
    [Number.MAX_SAFE_INTEGER, '9b001fffffffffffff'],
  ];

  it.each(arrayHeaders)('encodeArrayHeader(%i)', (length, expected) => {
    expect(toHex(encodeArrayHeader(length))).toBe(expected);
  });

  it('encodeMapHeader uses major type 5', () => {
    expect(toHex(encodeMapHeader(0))).toBe('a0');
    expect(toHex(encodeMapHeader(3))).toBe('a3');
    expect(toHex(encodeMapHeader(24))).toBe('b818');
    expect(toHex(encodeMapHeader(70000))).toBe('ba00011170');
  });

  it.each([-1, 1.5, NaN, 2 ** 53])('header length %d is rejected', (length) => {
    expect(() => encodeArrayHeader(length)).toThrow(RangeError);
  });

  it('array header matches the encoder', () => {
    const items = Array.from({ length: 300 }, (_, index) => index);
    const streamed = concatBytes([encodeArrayHeader(items.length), ...items.map((item) => encodeCanonicalCbor(item))]);
    expect(toHex(streamed)).toBe(toHex(encodeCanonicalCbor(items)));
  });

  it('compareCborKeys orders bytewise with prefixes first', () => {
    expect(compareCborKeys(fromHex('6162'), fromHex('617a'))).toBeLessThan(0);
    expect(compareCborKeys(fromHex('617a'), fromHex('626161'))).toBeLessThan(0);
    expect(compareCborKeys(fromHex('1818'), fromHex('20'))).toBeLessThan(0);
    expect(compareCborKeys(fromHex('01'), fromHex('0100'))).toBeLessThan(0);
    expect(compareCborKeys(fromHex('0100'), fromHex('01'))).toBeGreaterThan(0);
    expect(compareCborKeys(fromHex('6161'), fromHex('6161'))).toBe(0);
  });

  it('key-by-key map matches the encoder', () => {
    const files = [
      { path: 'a.txt', size: 1 },
      { path: 'b/c.bin', size: 70000 },
      { path: 'z', size: 0 },
    ];
    const document = { version: 1, files, name: 'pkg', digest: 'blake3:00' };

    const keys = Object.keys(document)
      .map((key) => ({ key, bytes: encodeCanonicalCbor(key) }))
      .sort((a, b) => compareCborKeys(a.bytes, b.bytes));
    const parts: Uint8Array[] = [encodeMapHeader(keys.length)];
    for (const { key, bytes } of keys) {
      parts.push(bytes);
      if (key === 'files') {
        parts.push(encodeArrayHeader(files.length));
        for (const file of files) parts.push(encodeCanonicalCbor(file));
      } else {
        parts.push(encodeCanonicalCbor(document[key as keyof typeof document]));
      }
    }

    expect(keys.map(({ key }) => key)).toEqual(['name', 'files', 'digest', 'version']);
    expect(toHex(concatBytes(parts))).toBe(toHex(encodeCanonicalCbor(document)));
  });
});

describe('canonicalJson', () => {
  it('sorts keys by UTF-16 code units and normalizes numbers', () => {
    const value = { '\uFB33': 2, '😀': 1, n: [1.0, 1e20, 1e21, 0.000001, 1e-7, -0] };
    expect(canonicalJson(value)).toBe('{"n":[1,100000000000000000000,1e+21,0.000001,1e-7,0],"😀":1,"\uFB33":2}');
  });

  it('serializes the RFC 8785 §3.2.2 sample', () => {
    const input =
      '{"numbers": [333333333.33333329, 1E30, 4.50, 2e-3, 0.000000000000000000000000001],' +
      ' "string": "\\u20ac$\\u000F\\u000aA\'\\u0042\\u0022\\u005c\\\\\\"\\/",' +
      ' "literals": [null, true, false]}';
    const expected =
      '{"literals":[null,true,false],"numbers":[333333333.3333333,1e+30,4.5,0.002,1e-27],' +
      '"string":"€$\\u000f\\nA\'B\\"\\\\\\\\\\"/"}';
    expect(canonicalJson(JSON.parse(input))).toBe(expected);
  });

  const numberSamples: [string, string][] = [
    ['333333333.33333329', '333333333.3333333'],
    ['1E30', '1e+30'],
    ['4.50', '4.5'],
    ['2e-3', '0.002'],
    ['0.000000000000000000000000001', '1e-27'],
  ];

  it.each(numberSamples)('number %s serializes as %s', (text, expected) => {
    expect(canonicalJson(JSON.parse(text))).toBe(expected);
  });

  // RFC 8785 Appendix B: IEEE 754 bit patterns and their serialization.
  const appendixB: [string, string][] = [
    ['0000000000000000', '0'],
    ['8000000000000000', '0'],
    ['0000000000000001', '5e-324'],
    ['8000000000000001', '-5e-324'],
    ['7fefffffffffffff', '1.7976931348623157e+308'],
    ['ffefffffffffffff', '-1.7976931348623157e+308'],
    ['4340000000000000', '9007199254740992'],
    ['c340000000000000', '-9007199254740992'],
    ['4430000000000000', '295147905179352830000'],
    ['44b52d02c7e14af5', '9.999999999999997e+22'],
    ['44b52d02c7e14af6', '1e+23'],
    ['44b52d02c7e14af7', '1.0000000000000001e+23'],
    ['444b1ae4d6e2ef4e', '999999999999999700000'],
    ['444b1ae4d6e2ef4f', '999999999999999900000'],
    ['444b1ae4d6e2ef50', '1e+21'],
    ['3eb0c6f7a0b5ed8c', '9.999999999999997e-7'],
    ['3eb0c6f7a0b5ed8d', '0.000001'],
    ['41b3de4355555553', '333333333.3333332'],
    ['41b3de4355555554', '333333333.33333325'],
    ['41b3de4355555555', '333333333.3333333'],
    ['41b3de4355555556', '333333333.3333334'],
    ['41b3de4355555557', '333333333.33333343'],
    ['becbf647612f3696', '-0.0000033333333333333333'],
    ['43143ff3c1cb0959', '1424953923781206.2'],
  ];

  it.each(appendixB)('RFC 8785 Appendix B %s', (bits, expected) => {
    expect(canonicalJson(doubleFromBits(bits))).toBe(expected);
  });

  it('sorts the RFC 8785 §3.2.3 keys', () => {
    const value = {
      '\u20ac': 'Euro Sign',
      '\r': 'Carriage Return',
      '\ufb33': 'Hebrew Letter Dalet With Dagesh',
      '1': 'One',
      '\ud83d\ude00': 'Emoji: Grinning Face',
      '\u0080': 'Control',
      '\u00f6': 'Latin Small Letter O With Diaeresis',
    };
    const expected =
      '{"\\r":"Carriage Return","1":"One","\u0080":"Control",' +
      '"\u00f6":"Latin Small Letter O With Diaeresis","\u20ac":"Euro Sign",' +
      '"\ud83d\ude00":"Emoji: Grinning Face","\ufb33":"Hebrew Letter Dalet With Dagesh"}';
    expect(canonicalJson(value)).toBe(expected);
  });

  it('allows integers beyond 2^53 and NUL', () => {
    expect(canonicalJson({ big: 2 ** 60, text: 'a\u0000b' })).toBe('{"big":1152921504606847000,"text":"a\\u0000b"}');
  });

  it('rejects values outside the JSON data model', () => {
    expect(() => canonicalJson({ a: [1, '\uD800'] })).toThrow(/\$\.a\[1\] contains a lone UTF-16 surrogate/);
    expect(() => canonicalJson({ a: NaN })).toThrow(/\$\.a is NaN/);
    expect(() => canonicalJson({ a: undefined })).toThrow(/\$\.a is undefined/);
    expect(() => canonicalJson({ at: new Date(0) })).toThrow(/\$\.at is an object of type Date/);
    expect(() => canonicalJson(1n)).toThrow(/\$ is a bigint/);
  });

  it('rejects a cycle', () => {
    const cyclic: Record<string, unknown> = {};
    cyclic.self = cyclic;
    expect(() => canonicalJson(cyclic)).toThrow(/more than 100 levels/);
  });
});

describe('assertCanonicalizable', () => {
  it('accepts ordinary nested metadata', () => {
    const metadata = JSON.parse('{"build":{"steps":[{"name":"test","ok":true,"ms":12.5}],"id":9007199254740991}}');
    expect(() => assertCanonicalizable(metadata, 'metadata')).not.toThrow();
  });

  it('rejects a lone surrogate naming the field', () => {
    const error = captureValidationError(() => assertCanonicalizable({ a: { b: [0, 1, '\uD800'] } }, 'metadata'));
    expect(error.status).toBe(400);
    expect(error.fields.errors).toEqual([
      {
        field: 'metadata.a.b[2]',
        rule: 'lone_surrogate',
        message: 'contains a lone UTF-16 surrogate (U+D800). Send well-formed Unicode text.',
      },
    ]);
    expect(error.message).toBe('metadata.a.b[2] contains a lone UTF-16 surrogate (U+D800). Send well-formed Unicode text.');
  });

  it('rejects a lone surrogate in a key', () => {
    const error = captureValidationError(() => assertCanonicalizable({ ['x\uDC00']: 1 }, 'metadata'));
    expect(error.fields.errors).toEqual([
      {
        field: 'metadata["x\\udc00"]',
        rule: 'lone_surrogate',
        message: 'has a key that contains a lone UTF-16 surrogate (U+DC00). Send well-formed Unicode text.',
      },
    ]);
  });

  it('rejects a number that overflows to Infinity', () => {
    const error = captureValidationError(() => assertCanonicalizable(JSON.parse('{"a":1e999}'), 'metadata'));
    expect(error.fields.errors).toEqual([
      { field: 'metadata.a', rule: 'finite_number', message: 'is Infinity, but JSON numbers must be finite.' },
    ]);
  });

  it('rejects NUL in strings and keys', () => {
    const error = captureValidationError(() => assertCanonicalizable({ note: 'a\u0000b', 'k\u0000': 1 }, 'metadata'));
    expect(error.fields.errors).toEqual([
      {
        field: 'metadata.note',
        rule: 'nul_character',
        message: 'contains the NUL character (U+0000), which PostgreSQL jsonb cannot store.',
      },
      {
        field: 'metadata["k\\u0000"]',
        rule: 'nul_character',
        message: 'has a key that contains the NUL character (U+0000), which PostgreSQL jsonb cannot store.',
      },
    ]);
    expect(error.message).toBe('2 values in metadata cannot be stored as canonical JSON; see errors.');
  });

  it('rejects integers outside ±(2^53 − 1)', () => {
    const error = captureValidationError(() => assertCanonicalizable({ a: 2 ** 53, b: -(2 ** 53), c: 1e300 }, 'metadata'));
    const issues = error.fields.errors as { field: string; rule: string }[];
    expect(issues.map(({ field, rule }) => `${field} ${rule}`)).toEqual([
      'metadata.a safe_integer',
      'metadata.b safe_integer',
      'metadata.c safe_integer',
    ]);
  });

  it('accepts the largest safe integers', () => {
    expect(() => assertCanonicalizable([2 ** 53 - 1, -(2 ** 53 - 1)], 'metadata')).not.toThrow();
  });

  it('rejects values that are not plain JSON', () => {
    const value = { a: undefined, b: () => 1, c: 1n, d: new Date(0), e: new Map(), f: [, 1] };
    const error = captureValidationError(() => assertCanonicalizable(value, 'metadata'));
    const issues = error.fields.errors as { field: string; rule: string; message: string }[];
    expect(issues.map(({ field, rule, message }) => `${field} ${rule} ${message}`)).toEqual([
      'metadata.a json_type is undefined, which JSON cannot represent.',
      'metadata.b json_type is a function, which JSON cannot represent.',
      'metadata.c json_type is a bigint, which JSON cannot represent.',
      'metadata.d json_type is an object of type Date, which JSON cannot represent.',
      'metadata.e json_type is an object of type Map, which JSON cannot represent.',
      'metadata.f[0] json_type is undefined, which JSON cannot represent.',
    ]);
  });

  it('rejects nesting beyond the maximum depth', () => {
    let deepest: unknown = 1;
    for (let level = 0; level < MAX_JSON_DEPTH; level++) deepest = [deepest];
    expect(() => assertCanonicalizable(deepest, 'metadata')).not.toThrow();

    const error = captureValidationError(() => assertCanonicalizable([deepest], 'metadata'));
    const issues = error.fields.errors as { field: string; rule: string }[];
    expect(issues).toHaveLength(1);
    expect(issues[0].rule).toBe('max_depth');
    expect(issues[0].field).toBe(`metadata${'[0]'.repeat(MAX_JSON_DEPTH)}`);
  });

  it('lists at most 20 issues', () => {
    const values = Array.from({ length: 50 }, () => NaN);
    const error = captureValidationError(() => assertCanonicalizable(values, 'metadata'));
    expect(error.fields.errors).toHaveLength(20);
  });
});
