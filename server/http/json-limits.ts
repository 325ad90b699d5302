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

/**
 * Returns the path of the first object member whose name repeats an earlier name of the same object
 * (`metadata.commit`), or undefined. JSON.parse keeps only the last of such members, so the others would
 * be dropped without a word, and RFC 8785, which the manifests use, applies only to I-JSON (RFC 7493),
 * which forbids duplicate names. Names are compared after unescaping, so `"a"` and `"\u0061"` collide.
 * `text` must be JSON that JSON.parse accepted. Like findProtoKey, the scan keeps its own stack instead
 * of recursing, so any nesting that JSON.parse accepts is scanned.
 */
export function findDuplicateKey(text: string, root: string): string | undefined {
  let top: ScanFrame | undefined;
  for (let index = 0; index < text.length; index += 1) {
    const char = text[index];
    if (char === '"') {
      let end = index + 1;
      while (text[end] !== '"') end += text[end] === '\\' ? 2 : 1;
      if (top?.names && top.expectName) {
        const name = JSON.parse(text.slice(index, end + 1)) as string;
        if (top.names.has(name)) return entryPath({ value: undefined, parent: frameEntry(top), step: name }, root);
        top.names.add(name);
        top.lastName = name;
        top.expectName = false;
      }
      index = end;
    } else if (char === '{' || char === '[') {
      let step: string | number = '';
      if (top?.names) step = top.lastName;
      else if (top) step = top.items;
      top = { parent: top, step, names: char === '{' ? new Set() : undefined, expectName: char === '{', lastName: '', items: 0 };
    } else if (char === '}' || char === ']') {
      top = top?.parent;
    } else if (char === ',' && top !== undefined) {
      if (top.names) top.expectName = true;
      else top.items += 1;
    }
  }
  return undefined;
}

/** An object or array that findDuplicateKey is inside, with the member names seen so far in an object. */
type ScanFrame = {
  parent: ScanFrame | undefined;
  step: string | number;
  names: Set<string> | undefined;
  expectName: boolean;
  lastName: string;
  items: number;
};

/** Returns the path entry of `frame`, built without recursion because frames may nest very deeply. */
function frameEntry(frame: ScanFrame): PathEntry {
  const frames: ScanFrame[] = [];
  for (let current: ScanFrame | undefined = frame; current !== undefined; current = current.parent) frames.push(current);
  let entry: PathEntry | undefined;
  for (const current of frames.reverse()) entry = { value: undefined, parent: entry, step: current.step };
  return entry!;
}

/** Returns the `unique_keys` issue for the repeated key at `path`. */
export function duplicateKeyIssue(path: string): ValidationIssue {
  return { field: path, rule: 'unique_keys', message: 'this key appears more than once in its object; keep one' };
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
