import { ValidationError } from '../errors';

/** Characters of a key at most, after the quotes of an sf-string are removed. */
export const MAX_IDEMPOTENCY_KEY_LENGTH = 255;

/** An sf-string (RFC 8941 §3.3.3): printable ASCII in double quotes, where only `"` and `\` are escaped. */
const SF_STRING = /^"((?:[\x20\x21\x23-\x5b\x5d-\x7e]|\\["\\])*)"$/;
/** A key without the quotes of an sf-string: visible ASCII without quotes or backslashes. */
const BARE_KEY = /^[\x21\x23-\x5b\x5d-\x7e]+$/;

/**
 * Returns the key of an `Idempotency-Key` request header, or undefined when the header is absent. The
 * draft standard (draft-ietf-httpapi-idempotency-key-header) makes it an sf-string such as
 * `"8e03978e-40d5-43e8-bc93-6894a57f9324"`, and a value without the quotes is accepted too, because they
 * are easy to lose on a command line. Throws 400 for an empty, overlong or malformed value.
 */
export function parseIdempotencyKey(header: string | null): string | undefined {
  if (header === null) return undefined;
  const value = header.trim();
  const quoted = SF_STRING.exec(value);
  const key = quoted ? quoted[1].replace(/\\(["\\])/g, '$1') : BARE_KEY.test(value) ? value : undefined;
  if (key === undefined) {
    throw new ValidationError('The Idempotency-Key header must be a quoted string of printable ASCII, such as "8e03978e-40d5-43e8-bc93-6894a57f9324".', [
      { field: 'Idempotency-Key', rule: 'sf_string', message: `invalid value ${JSON.stringify(header)}` },
    ]);
  }
  if (key.length === 0 || key.length > MAX_IDEMPOTENCY_KEY_LENGTH) {
    throw new ValidationError(`The Idempotency-Key must have 1 to ${MAX_IDEMPOTENCY_KEY_LENGTH} characters; a random UUID is a good key.`, [
      { field: 'Idempotency-Key', rule: 'length', message: `${key.length} characters` },
    ]);
  }
  return key;
}
