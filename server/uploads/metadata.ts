import { ValidationError } from '../errors';

/** Decoded Upload-Metadata: a key sent without a value maps to null. */
export type UploadMetadata = Record<string, string | null>;

// tus 1.0.0: the key MUST NOT contain spaces and commas and MUST NOT be empty, and SHOULD be ASCII.
const KEY_PATTERN = /^[\x21-\x2b\x2d-\x7e]+$/;
// Canonical base64 with padding, as the tus 1.0.0 Upload-Metadata header requires for values.
const BASE64_PATTERN = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;
// Decoded values end up in headers, paths and logs, so C0 controls (CR and LF among them), DEL and C1 controls are rejected.
const CONTROL_CHARACTERS = /[\u0000-\u001f\u007f-\u009f]/;
const UTF8 = new TextDecoder('utf-8', { fatal: true });

function invalid(detail: string, message: string): ValidationError {
  return new ValidationError(`Invalid Upload-Metadata: ${detail}`, [{ field: 'Upload-Metadata', rule: 'tus_metadata', message }]);
}

/**
 * Parses an Upload-Metadata header value (tus 1.0.0): comma-separated pairs of a key and an optional
 * base64 value, separated by one space. Throws ValidationError (400) for an empty key, a value that is
 * not padded base64, a key given twice, a value that is not UTF-8, and a decoded value that contains a
 * control character.
 */
export function parseUploadMetadata(header: string | null): UploadMetadata {
  const metadata: UploadMetadata = {};
  if (header === null || header.trim() === '') return metadata;

  for (const pair of header.split(',')) {
    const parts = pair.trim().split(' ');
    if (parts.length > 2) throw invalid(`the pair ${JSON.stringify(pair.slice(0, 64))} has more than one space.`, 'a pair is "key" or "key base64value"');
    const [key, encoded] = parts;
    if (!KEY_PATTERN.test(key)) throw invalid(`the key ${JSON.stringify(key.slice(0, 64))} is empty or contains a space, comma or non-ASCII character.`, 'invalid key');
    if (Object.hasOwn(metadata, key)) throw invalid(`the key "${key}" appears more than once.`, 'keys must be unique');
    if (encoded === undefined) {
      metadata[key] = null;
      continue;
    }
    if (!BASE64_PATTERN.test(encoded)) throw invalid(`the value of "${key}" is not base64.`, 'values must be base64 with padding');

    let decoded: string;
    try {
      decoded = UTF8.decode(Buffer.from(encoded, 'base64'));
    } catch {
      throw invalid(`the value of "${key}" is not UTF-8 after base64 decoding.`, 'values must be UTF-8');
    }
    if (CONTROL_CHARACTERS.test(decoded)) throw invalid(`the value of "${key}" contains a control character such as CR or LF.`, 'values must not contain control characters');
    metadata[key] = decoded;
  }
  return metadata;
}
