import { ValidationError } from '../errors';

/** Characters of a key at most, after the quotes and escapes of an sf-string are removed. */
export const MAX_IDEMPOTENCY_KEY_LENGTH = 255;

/** An sf-string (RFC 8941 §3.3.3): printable ASCII in double quotes, where only `"` and `\` are escaped. */
const SF_STRING = /^"((?:[\x20\x21\x23-\x5b\x5d-\x7e]|\\["\\])*)"$/;
/** A key without the quotes of an sf-string: the characters of an sf-token (RFC 8941 §3.3.4), in any order. */
const BARE_KEY = /^[!#$%&'*+\-.^_`|~0-9A-Za-z:/]+$/;

/**
 * Returns the key of an `Idempotency-Key` request header, or undefined when the header is absent. The
 * draft standard (draft-ietf-httpapi-idempotency-key-header) makes it an sf-string such as
 * `"8e03978e-40d5-43e8-bc93-6894a57f9324"`, and a value without the quotes is accepted too, because they
 * are easy to lose on a command line. Throws 400 for an empty, overlong or malformed value.
 */
export function parseIdempotencyKey(header: string | null): string | undefined {
  if (header === null) return undefined;
  // Headers.get has already removed the spaces and tabs around the value, as HTTP does.
  let key: string | undefined;
  const quoted = SF_STRING.exec(header);
  if (quoted) key = quoted[1].replace(/\\(["\\])/g, '$1');
  else if (BARE_KEY.test(header)) key = header;
  if (key === undefined) {
    throw new ValidationError(
      'The Idempotency-Key header must be a quoted string of printable ASCII, such as "8e03978e-40d5-43e8-bc93-6894a57f9324", or the same without quotes when it has only letters, digits and !#$%&\'*+-.^_`|~:/.',
      [
        { field: 'Idempotency-Key', rule: 'sf_string', message: `invalid value ${JSON.stringify(header)}` },
      ],
    );
  }
  if (key.length === 0 || key.length > MAX_IDEMPOTENCY_KEY_LENGTH) {
    throw new ValidationError(`The Idempotency-Key must have 1 to ${MAX_IDEMPOTENCY_KEY_LENGTH} characters. A random UUID is a good key.`, [
      { field: 'Idempotency-Key', rule: 'length', message: `${key.length} characters` },
    ]);
  }
  return key;
}
