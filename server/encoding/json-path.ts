/**
 * Builds the paths that name a value inside a JSON document in error messages, such as
 * `metadata.build.steps[2]` or `metadata["commit.id"]`. The server and the console both use them, so this
 * module imports nothing from Node.js.
 */

const IDENTIFIER = /^[A-Za-z_$][A-Za-z0-9_$]*$/;

/** Appends a key to a path: `.name` when the key is an identifier, `["key"]` otherwise. */
export function appendKey(path: string, key: string): string {
  return IDENTIFIER.test(key) ? `${path}.${key}` : `${path}[${JSON.stringify(key)}]`;
}

/** Appends an array index to a path: `[index]`. */
export function appendIndex(path: string, index: number): string {
  return `${path}[${index}]`;
}

/**
 * Turns an RFC 6901 JSON Pointer into a path below `root`. A segment of digits is an array index only
 * when the value at that point of `document` is an array, because `/0` also names the key "0" of an object.
 */
export function pointerToPath(root: string, pointer: string, document: unknown): string {
  if (pointer === '') return root;
  let path = root;
  let value: unknown = document;
  for (const encoded of pointer.slice(1).split('/')) {
    const segment = encoded.replaceAll('~1', '/').replaceAll('~0', '~');
    if (Array.isArray(value) && /^(0|[1-9][0-9]*)$/.test(segment)) {
      path = appendIndex(path, Number(segment));
      value = value[Number(segment)];
    } else {
      path = appendKey(path, segment);
      value = value !== null && typeof value === 'object' ? (value as Record<string, unknown>)[segment] : undefined;
    }
  }
  return path;
}
