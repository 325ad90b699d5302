/**
 * Size limits and key checks that the server applies to JSON request bodies. The console imports this
 * module to check its forms with the same rules before sending, so it must import nothing from Node.js.
 */
import type { ValidationIssue } from '../errors';
import { appendIndex, appendKey } from '../encoding/json-path';

/** Maximum size of a JSON request body in bytes, for routes that set no other limit. */
export const MAX_JSON_BODY_BYTES = 1024 * 1024;

/** Default of the MAX_METADATA_BYTES setting: the maximum size of a package's metadata as JSON, in bytes. */
export const DEFAULT_MAX_METADATA_BYTES = 64 * 1024;

/** Returns the size in bytes of `value` serialized with JSON.stringify and encoded as UTF-8. */
export function jsonByteLength(value: unknown): number {
  return new TextEncoder().encode(JSON.stringify(value)).length;
}

/**
 * Returns the path of an object key `__proto__` in a parsed JSON value, below `root` (such as
 * `metadata.a.__proto__`), or undefined. JSON.parse keeps such a key as an own property, but copying the
 * object by assignment (as validation does) turns it into a prototype change and drops it, so the server
 * rejects it. The walk uses an explicit stack, because JSON.parse accepts nesting far deeper than
 * recursion could follow.
 */
export function findProtoKey(value: unknown, root: string): string | undefined {
  const pending: PathEntry[] = [{ value, parent: undefined, step: '' }];
  while (pending.length > 0) {
    const entry = pending.pop()!;
    const current = entry.value;
    if (current === null || typeof current !== 'object') continue;
    if (Array.isArray(current)) {
      current.forEach((item, index) => pending.push({ value: item, parent: entry, step: index }));
      continue;
    }
    for (const key of Object.keys(current)) {
      const child: PathEntry = { value: (current as Record<string, unknown>)[key], parent: entry, step: key };
      if (key === '__proto__') return entryPath(child, root);
      pending.push(child);
    }
  }
  return undefined;
}

/**
 * A value met while walking a document. Each entry links to its parent, so a path string is built only
 * for a key that is found, not for every value of a deeply nested document.
 */
type PathEntry = { value: unknown; parent: PathEntry | undefined; step: string | number };

function entryPath(entry: PathEntry, root: string): string {
  const steps: (string | number)[] = [];
  for (let current: PathEntry | undefined = entry; current?.parent !== undefined; current = current.parent) steps.push(current.step);
  const path = root + steps.reverse().map((step) => (typeof step === 'number' ? appendIndex('', step) : appendKey('', step))).join('');
  return path.startsWith('.') ? path.slice(1) : path;
}

/** The message the server rejects a `__proto__` key with. */
export const PROTO_KEY_DETAIL = 'The key "__proto__" is not allowed in request bodies.';

/** Returns the `no_proto_key` issue for the key at `path`. */
export function protoKeyIssue(path: string): ValidationIssue {
  return { field: path, rule: 'no_proto_key', message: 'the key "__proto__" is not allowed; rename the key' };
}

/** Returns the `max_bytes` issue when `metadata` as JSON is larger than `maxBytes`, or undefined. */
export function metadataSizeIssue(metadata: unknown, maxBytes: number): { detail: string; issue: ValidationIssue } | undefined {
  const bytes = jsonByteLength(metadata);
  if (bytes <= maxBytes) return undefined;
  return {
    detail: `The metadata is ${bytes} bytes; the limit is ${maxBytes}.`,
    issue: { field: 'metadata', rule: 'max_bytes', message: `is ${bytes} bytes of JSON; at most ${maxBytes} bytes are allowed` },
  };
}

/** Returns the issue when a JSON request body of `body` would exceed `maxBytes`, the server's 413, or undefined. */
export function bodySizeIssue(body: unknown, maxBytes = MAX_JSON_BODY_BYTES): ValidationIssue | undefined {
  const bytes = jsonByteLength(body);
  if (bytes <= maxBytes) return undefined;
  return { field: '(body)', rule: 'max_bytes', message: `the request would be ${bytes} bytes; the server accepts at most ${maxBytes} bytes` };
}
