/**
 * Deterministic CBOR (RFC 8949 §4.2.1) for everything that is hashed or served as canonical CBOR:
 * manifests, event payloads and event lists. All such bytes go through this module.
 *
 * §4.2.1 requires four things, and cborg 6.1.5 with `rfc8949EncodeOptions` provides each of them:
 * - integers, lengths and tags in their shortest form,
 * - floats in the shortest of half, single or double precision that keeps the value exactly,
 * - definite lengths only,
 * - map keys sorted by the bytewise lexicographic order of their encoded form.
 *
 * JavaScript has one number type, so the encoder cannot tell 1.0 from 1. cborg encodes every number that
 * is a safe integer (|n| ≤ 2^53 − 1) as a CBOR integer, -0 included, and every other number as the
 * shortest float that keeps its value. So 1.0 becomes `01` rather than `f93c00`, -0.0 becomes `00`, and
 * 2^53 becomes the float `fa5a000000`. A bigint always becomes an integer (major type 0 or 1).
 */
import { decode, encode, rfc8949EncodeOptions, type DecodeOptions, type EncodeOptions } from 'cborg';

const MAJOR_TYPE_ARRAY = 4;
const MAJOR_TYPE_MAP = 5;

const ENCODE_OPTIONS: EncodeOptions = {
  ...rfc8949EncodeOptions,
  typeEncoders: {
    Date: () => {
      throw new TypeError('Cannot encode a Date as canonical CBOR: pass the time as an RFC 3339 string.');
    },
    // cborg would write the simple value `undefined` (f7), which has no JSON counterpart, so the CBOR
    // and JSON forms of one document could disagree.
    undefined: () => {
      throw new TypeError('Cannot encode undefined as canonical CBOR: omit the property or use null.');
    },
  },
};

const DECODE_OPTIONS: DecodeOptions = {
  strict: true,
  allowIndefinite: false,
  allowUndefined: false,
  rejectDuplicateMapKeys: true,
};

/**
 * Encodes a value as deterministic CBOR (RFC 8949 §4.2.1).
 *
 * Accepts null, booleans, numbers, bigints, strings, Uint8Array (a byte string), arrays, plain objects
 * and Maps whose keys are not themselves arrays or maps. Throws TypeError for a Date or undefined, and
 * cborg's Error for a function, symbol or other unsupported type.
 */
export function encodeCanonicalCbor(value: unknown): Uint8Array {
  return encode(value, ENCODE_OPTIONS);
}

/**
 * Decodes one CBOR data item. Throws when the input contains trailing bytes, an indefinite length, an
 * integer or length in more bytes than needed, a repeated map key, a non-string map key, `undefined`,
 * or a tag.
 *
 * It does not check that floats are in their shortest form or that map keys are sorted, so it accepts
 * well-formed CBOR that is not deterministic. To check that bytes are deterministic, compare them with
 * `encodeCanonicalCbor(decodeCbor(bytes))`. That holds only for data written under the number model
 * described at the top of this file.
 *
 * NOTE: cborg 6.1.5 replaces invalid UTF-8 in a text string with U+FFFD instead of rejecting it.
 */
export function decodeCbor(bytes: Uint8Array): unknown {
  return decode(bytes, DECODE_OPTIONS);
}

/**
 * Encodes the head of a definite-length array of `length` items in its shortest form. Followed by
 * `length` encoded items, it lets a caller write a long array one item at a time.
 */
export function encodeArrayHeader(length: number): Uint8Array {
  return encodeHead(MAJOR_TYPE_ARRAY, length);
}

/** Encodes the head of a definite-length map of `length` key/value pairs in its shortest form. */
export function encodeMapHeader(length: number): Uint8Array {
  return encodeHead(MAJOR_TYPE_MAP, length);
}

/**
 * Compares two encoded map keys in the order RFC 8949 §4.2.1 requires: bytewise lexicographic, so a
 * shorter key that is a prefix of a longer one sorts first. Returns a negative number, 0 or a positive
 * number, as `Array.prototype.sort` expects.
 *
 * To stream a map, encode each key with `encodeCanonicalCbor`, sort the keys with this function, then
 * write `encodeMapHeader(count)` and each key followed by its encoded value.
 */
export function compareCborKeys(a: Uint8Array, b: Uint8Array): number {
  return Buffer.compare(a, b);
}

/** Encodes a CBOR head (RFC 8949 §3): the major type in the top three bits and the argument after it. */
function encodeHead(majorType: number, argument: number): Uint8Array {
  if (!Number.isSafeInteger(argument) || argument < 0) {
    throw new RangeError(`A CBOR length must be a non-negative safe integer, got ${argument}.`);
  }

  const initialByte = majorType << 5;
  if (argument < 24) return Uint8Array.of(initialByte | argument);

  if (argument <= 0xff) return Uint8Array.of(initialByte | 24, argument);

  if (argument <= 0xffff) {
    const head = new Uint8Array(3);
    head[0] = initialByte | 25;
    new DataView(head.buffer).setUint16(1, argument);
    return head;
  }

  if (argument <= 0xffffffff) {
    const head = new Uint8Array(5);
    head[0] = initialByte | 26;
    new DataView(head.buffer).setUint32(1, argument);
    return head;
  }

  const head = new Uint8Array(9);
  head[0] = initialByte | 27;
  new DataView(head.buffer).setBigUint64(1, BigInt(argument));
  return head;
}
