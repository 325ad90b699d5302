/**
 * RFC 8785 JSON Canonicalization Scheme (JCS) and the checks that keep user JSON within what both JCS and
 * PostgreSQL jsonb can represent.
 *
 * JCS writes no whitespace, sorts object keys by their UTF-16 code units, serializes numbers the way
 * ECMAScript's Number.prototype.toString does, and escapes only what JSON requires. The canonicalize
 * package (5.1.0) implements it. It declares Node ≥ 22 but needs only `String.prototype.isWellFormed`,
 * which Node 20 has.
 */
import canonicalize from 'canonicalize';
import { ValidationError, type ValidationIssue } from '../errors';
import { appendIndex, appendKey } from './json-path';

/**
 * Maximum nesting of arrays and objects, counting the outermost one as 1. It bounds the recursion of
 * the checks below and keeps stored documents far from the stack limits of JSON.stringify and of
 * PostgreSQL's jsonb parser.
 * NOTE: 100 is a chosen limit, not one either of those enforces.
 */
export const MAX_JSON_DEPTH = 100;

/** Maximum number of issues one ValidationError lists, so a huge document yields a short response. */
const MAX_ISSUES = 20;

// A high surrogate not followed by a low one, or a low surrogate not preceded by a high one.
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

type CheckMode = 'json' | 'storage';

/**
 * Serializes a value as RFC 8785 canonical JSON.
 *
 * Accepts only the JSON data model: null, booleans, finite numbers, strings of well-formed UTF-16,
 * arrays and plain objects, nested at most MAX_JSON_DEPTH deep. Throws TypeError naming the first
 * offending path otherwise, where JSON.stringify would silently drop undefined or call a Date's toJSON.
 * Integers beyond 2^53 are allowed here and serialize as JCS specifies (1e21 → `1e+21`).
 */
export function canonicalJson(value: unknown): string {
  const issues: ValidationIssue[] = [];
  checkValue(value, '$', 1, 'json', issues);
  if (issues.length > 0) {
    throw new TypeError(`Cannot serialize as canonical JSON: ${issues[0].field} ${issues[0].message}`);
  }

  const text = canonicalize(value);
  if (text === undefined) {
    throw new TypeError('Cannot serialize as canonical JSON: the value has no JSON representation.');
  }
  return text;
}

/**
 * Checks that user-supplied JSON can be canonicalized by JCS and stored in PostgreSQL jsonb, and throws
 * ValidationError (400) listing each offending path when it cannot. `field` names the value in those
 * paths, as in `metadata.build.steps[2]`.
 *
 * Rejected, with the rule named in each issue:
 * - `lone_surrogate`: a string or key holding an unpaired UTF-16 surrogate. JCS requires well-formed
 *   Unicode (RFC 8785 §3.2.2.2) and jsonb stores UTF-8, which cannot encode one.
 * - `nul_character`: U+0000 in a string or key, which jsonb rejects.
 * - `finite_number`: NaN or ±Infinity, which JSON cannot express. JSON.parse turns `1e999` into Infinity.
 * - `safe_integer`: an integral number outside ±(2^53 − 1). A JSON reader may round it, so it would not
 *   come back as sent. Send such numbers as strings.
 * - `json_type`: undefined, a function, a symbol, a bigint, a Date or any object that is not a plain
 *   object or an array.
 * - `max_depth`: arrays and objects nested deeper than MAX_JSON_DEPTH.
 */
export function assertCanonicalizable(value: unknown, field: string): void {
  const issues = canonicalizationIssues(value, field);
  if (issues.length === 0) return;

  const detail =
    issues.length === 1
      ? `${issues[0].field} ${issues[0].message}`
      : `${issues.length} values in ${field} cannot be stored as canonical JSON; see errors.`;
  throw new ValidationError(detail, issues);
}

/**
 * Returns the issues assertCanonicalizable would throw for, empty when there are none. The console runs
 * it on metadata before sending, so this module must import nothing from Node.js.
 */
export function canonicalizationIssues(value: unknown, field: string): ValidationIssue[] {
  const issues: ValidationIssue[] = [];
  checkValue(value, field, 1, 'storage', issues);
  return issues;
}

/** Appends an issue for `value` and everything inside it; stops once MAX_ISSUES are recorded. */
function checkValue(value: unknown, path: string, depth: number, mode: CheckMode, issues: ValidationIssue[]): void {
  if (issues.length >= MAX_ISSUES) return;

  if (value === null || typeof value === 'boolean') return;

  if (typeof value === 'string') {
    checkString(value, path, 'string', mode, issues);
    return;
  }

  if (typeof value === 'number') {
    checkNumber(value, path, mode, issues);
    return;
  }

  const isContainer = Array.isArray(value) || isPlainObject(value);
  if (!isContainer) {
    addIssue(issues, path, 'json_type', `is ${describeType(value)}, which JSON cannot represent.`);
    return;
  }

  if (depth > MAX_JSON_DEPTH) {
    addIssue(issues, path, 'max_depth', `nests arrays and objects more than ${MAX_JSON_DEPTH} levels deep.`);
    return;
  }

  if (Array.isArray(value)) {
    for (let index = 0; index < value.length; index++) {
      checkValue(value[index], appendIndex(path, index), depth + 1, mode, issues);
    }
    return;
  }

  const object = value as Record<string, unknown>;
  for (const key of Object.keys(object)) {
    const childPath = appendKey(path, key);
    checkString(key, childPath, 'key', mode, issues);
    checkValue(object[key], childPath, depth + 1, mode, issues);
  }
}

function checkString(
  text: string,
  path: string,
  role: 'string' | 'key',
  mode: CheckMode,
  issues: ValidationIssue[],
): void {
  const subject = role === 'key' ? 'has a key that contains' : 'contains';

  const surrogate = LONE_SURROGATE.exec(text);
  if (surrogate) {
    const codeUnit = surrogate[0].charCodeAt(0).toString(16).toUpperCase();
    addIssue(issues, path, 'lone_surrogate', `${subject} a lone UTF-16 surrogate (U+${codeUnit}). Send well-formed Unicode text.`);
  }

  if (mode === 'storage' && text.includes('\u0000')) {
    addIssue(issues, path, 'nul_character', `${subject} the NUL character (U+0000), which PostgreSQL jsonb cannot store.`);
  }
}

function checkNumber(number: number, path: string, mode: CheckMode, issues: ValidationIssue[]): void {
  if (!Number.isFinite(number)) {
    addIssue(issues, path, 'finite_number', `is ${number}, but JSON numbers must be finite.`);
    return;
  }

  if (mode === 'storage' && Number.isInteger(number) && !Number.isSafeInteger(number)) {
    addIssue(
      issues,
      path,
      'safe_integer',
      `is the integer ${number}, outside ±(2^53 − 1), which JSON readers may round. Send it as a string.`,
    );
  }
}

function addIssue(issues: ValidationIssue[], field: string, rule: string, message: string): void {
  if (issues.length < MAX_ISSUES) issues.push({ field, rule, message });
}

function isPlainObject(value: unknown): boolean {
  if (typeof value !== 'object' || value === null) return false;
  const prototype = Object.getPrototypeOf(value);
  return prototype === Object.prototype || prototype === null;
}

function describeType(value: unknown): string {
  if (value === undefined) return 'undefined';
  if (typeof value === 'bigint') return 'a bigint';
  if (typeof value === 'function') return 'a function';
  if (typeof value === 'symbol') return 'a symbol';
  const name = (value as object).constructor?.name;
  return name ? `an object of type ${name}` : 'an object that is not a plain object';
}
