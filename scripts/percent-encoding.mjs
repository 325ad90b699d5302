/**
 * The check that scripts/server.mjs runs on every request path before Next.js handles it. Next.js 16.5 decodes
 * each path segment with decodeURIComponent before any route handler or proxy runs, and a segment that
 * fails to decode ends in a plain-text 500 because the 400 error page needs `/_error`, which an App
 * Router-only build lacks. This module finds such segments so that the server responds with 400 problem+json.
 *
 * Plain JavaScript, because the server runs under plain `node` with no TypeScript loader.
 */

/** The rule name that a rejected path carries in its problem body. */
export const PERCENT_ENCODING_RULE = 'percent_encoding';

/**
 * Splits an absolute-form request target (`http://host:port/a/b?q`) into its authority and the
 * origin-form target that Next.js expects (`/a/b?q`, or `/?q` without a path). Returns null for any
 * other form.
 *
 * @param {string} target the request target as Node.js's `request.url` contains it
 * @returns {{ authority: string, originForm: string } | null}
 */
export function splitAbsoluteForm(target) {
  const absolute = /^[A-Za-z][A-Za-z0-9+.-]*:\/\/([^/?#]*)/.exec(target);
  if (!absolute) return null;
  const rest = target.slice(absolute[0].length);
  return { authority: absolute[1], originForm: rest.startsWith('/') ? rest : `/${rest}` };
}

/**
 * Builds the RFC 9457 problem body for a request target that is neither origin-form (`/a/b`) nor
 * absolute-form (`http://host/a/b`), such as `*` outside OPTIONS or an authority-form target.
 *
 * @param {string} target the request target as received
 */
export function invalidTargetProblem(target) {
  return {
    type: 'about:blank',
    title: 'Invalid request',
    status: 400,
    detail: `The request target ${JSON.stringify(target)} is not a path.`,
    errors: [{ field: '(path)', rule: 'request_target', message: 'the request target must start with "/" or be an absolute URL; "*" is valid only for OPTIONS' }],
  };
}

/**
 * Returns the path of an HTTP request target: an origin-form target (`/a/b?q`) up to its query or
 * fragment, an absolute-form target (`http://host/a/b`) without its scheme and authority, and `/` for
 * an absolute-form target without a path. Any other form (`*`, authority-form) is returned as given.
 *
 * @param {string} target the request target as Node.js's `request.url` contains it
 * @returns {string}
 */
export function pathOfRequestTarget(target) {
  const absolute = /^[A-Za-z][A-Za-z0-9+.-]*:\/\/[^/?#]*/.exec(target);
  const rest = absolute ? target.slice(absolute[0].length) : target;
  const end = rest.search(/[?#]/);
  const path = end === -1 ? rest : rest.slice(0, end);
  return absolute && path === '' ? '/' : path;
}

/**
 * Returns the first segment of `path` that decodeURIComponent rejects, or null when every segment decodes.
 * decodeURIComponent rejects a `%` that is not followed by two hexadecimal digits, and escapes whose bytes
 * are not valid UTF-8 (a truncated sequence, an overlong form, a surrogate or a stray continuation byte).
 * Valid escapes of any character, `%2F`, `%5C` and `%00` included, pass.
 *
 * @param {string} path
 * @returns {string | null}
 */
export function findMalformedSegment(path) {
  for (const segment of path.split('/')) {
    if (!segment.includes('%')) continue;
    try {
      decodeURIComponent(segment);
    } catch {
      return segment;
    }
  }
  return null;
}

/**
 * Builds the RFC 9457 problem body for a path with a malformed percent escape, in the format of
 * server/http/problem.ts: `errors` names the request path as the field `(path)` and the rule
 * `percent_encoding`, and `detail` quotes the path and the segment.
 *
 * @param {string} path the request path, still percent-encoded
 * @param {string} segment the segment that failed to decode
 */
export function malformedPathProblem(path, segment) {
  const message = `invalid percent escape in the segment ${JSON.stringify(segment)}: every "%" must be followed by two hexadecimal digits, and the escaped bytes must be valid UTF-8`;
  return {
    type: 'about:blank',
    title: 'Invalid request',
    status: 400,
    detail: `The request path ${JSON.stringify(path)} contains an invalid percent escape in the segment ${JSON.stringify(segment)}.`,
    errors: [{ field: '(path)', rule: PERCENT_ENCODING_RULE, message }],
  };
}
