import { ValidationError } from '../errors';

export const MAX_RELATIVE_PATH_BYTES = 1024;

/**
 * Normalizes a file's relative path to NFC and checks the rules every stored path obeys: `/`-separated
 * UTF-8, no leading `/`, no empty, `.` or `..` segment, no backslash, no NUL or other control character
 * (C0, DEL, C1), and at most 1024 bytes once encoded. Throws 400 naming the path and the broken rule.
 */
export function normalizeRelativePath(input: string, field = 'relative_path'): string {
  const reject = (rule: string, message: string): never => {
    throw new ValidationError(`Invalid ${field} ${JSON.stringify(input)}: ${message}.`, [{ field, rule, message }], {
      path: input,
    });
  };

  if (input.length === 0) reject('non_empty', 'the path is empty');
  if (!input.isWellFormed()) reject('utf8', 'the path contains a lone UTF-16 surrogate and cannot be encoded as UTF-8');
  const path = input.normalize('NFC');
  // C0 controls (including NUL, CR, LF, TAB), DEL and C1 controls.
  if (/[\u0000-\u001f\u007f-\u009f]/.test(path)) reject('no_control_characters', 'control characters are not allowed');
  if (path.includes('\\')) reject('no_backslash', 'backslashes are not allowed; separate segments with "/"');
  if (path.startsWith('/')) reject('relative', 'the path must not start with "/"');
  for (const segment of path.split('/')) {
    if (segment === '') reject('no_empty_segment', 'the path contains an empty segment ("//" or a trailing "/")');
    if (segment === '.' || segment === '..') reject('no_dot_segment', `"${segment}" segments are not allowed`);
  }
  const bytes = Buffer.byteLength(path, 'utf8');
  if (bytes > MAX_RELATIVE_PATH_BYTES) reject('max_bytes', `the path is ${bytes} bytes; the maximum is ${MAX_RELATIVE_PATH_BYTES}`);
  return path;
}

/** The last segment of a relative path, used as the download file name. */
export function baseName(relativePath: string): string {
  return relativePath.slice(relativePath.lastIndexOf('/') + 1);
}
