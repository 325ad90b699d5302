import { z } from 'zod';
import { PayloadTooLargeError, UnsupportedMediaTypeError, ValidationError, type ValidationIssue } from '../errors';
import { duplicateKeyIssue, findDuplicateKey, findProtoKey, MAX_JSON_BODY_BYTES, PROTO_KEY_DETAIL, protoKeyIssue } from './json-limits';

/**
 * Reads a JSON request body of at most `maxBytes`, then validates it with the schema. Throws 415 for
 * another content type, 413 past the limit, and 400 naming each invalid field.
 */
export async function parseJsonBody<Schema extends z.ZodType>(
  request: Request,
  schema: Schema,
  maxBytes = MAX_JSON_BODY_BYTES,
): Promise<z.infer<Schema>> {
  const contentType = request.headers.get('content-type') ?? '';
  if (!/^application\/(?:[\w.+-]+\+)?json\s*(?:;|$)/i.test(contentType)) {
    throw new UnsupportedMediaTypeError(`The request body must be application/json, not ${JSON.stringify(contentType || '(none)')}.`);
  }

  const text = await readTextWithLimit(request, maxBytes);
  let value: unknown;
  try {
    // No reviver: V8 applies a reviver recursively, which overflows the stack on deep but valid JSON.
    value = JSON.parse(text);
  } catch (error) {
    throw new ValidationError('The request body is not valid JSON.', [
      { field: '(body)', rule: 'json', message: (error as Error).message },
    ]);
  }
  const protoKey = findProtoKey(value, '');
  if (protoKey !== undefined) throw new ValidationError(PROTO_KEY_DETAIL, [protoKeyIssue(protoKey)]);
  const duplicateKey = findDuplicateKey(text, '');
  if (duplicateKey !== undefined) {
    throw new ValidationError(`The key at ${duplicateKey} appears more than once in its object; JSON.parse would keep only the last value.`, [
      duplicateKeyIssue(duplicateKey),
    ]);
  }
  return parseWithSchema(schema, value, 'The request body is invalid.');
}

/** Validates a value with a zod schema, mapping every issue to a field path and rule. */
export function parseWithSchema<Schema extends z.ZodType>(schema: Schema, value: unknown, detail: string): z.infer<Schema> {
  const parsed = schema.safeParse(value);
  if (parsed.success) return parsed.data;
  throw new ValidationError(detail, zodIssues(parsed.error));
}

export function zodIssues(error: z.ZodError): ValidationIssue[] {
  return error.issues.map((issue) => ({
    field: formatPath(issue.path),
    // zod reports every refinement as `custom`, so a refinement names its rule in its params.
    rule: issue.code === 'custom' && typeof issue.params?.rule === 'string' ? issue.params.rule : issue.code,
    message: issue.message,
  }));
}

function formatPath(path: PropertyKey[]): string {
  if (path.length === 0) return '(body)';
  return path
    .map((segment, index) => (typeof segment === 'number' ? `[${segment}]` : index === 0 ? String(segment) : `.${String(segment)}`))
    .join('');
}

async function readTextWithLimit(request: Request, maxBytes: number): Promise<string> {
  const declared = Number(request.headers.get('content-length') ?? NaN);
  if (Number.isFinite(declared) && declared > maxBytes) {
    throw new PayloadTooLargeError(`The JSON body is ${declared} bytes; the limit is ${maxBytes}.`, { limit_bytes: maxBytes });
  }
  if (!request.body) return '';
  const chunks: Uint8Array[] = [];
  let total = 0;
  const reader = request.body.getReader();
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    total += value.byteLength;
    if (total > maxBytes) {
      await reader.cancel();
      throw new PayloadTooLargeError(`The JSON body exceeds the limit of ${maxBytes} bytes.`, { limit_bytes: maxBytes });
    }
    chunks.push(value);
  }
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(Buffer.concat(chunks));
  } catch {
    throw new ValidationError('The request body is not valid UTF-8.', [{ field: '(body)', rule: 'utf8', message: 'invalid UTF-8 byte sequence' }]);
  }
}

/** Matches a non-negative integer written in decimal digits only. */
export const DECIMAL_DIGITS = /^\d+$/;

/** The schemas that queryInteger builds, before their default; the OpenAPI document shows them as integers. */
export const QUERY_INTEGERS = new WeakSet<z.ZodType>();

/**
 * Returns the schema of an integer query parameter from `minimum` to `maximum`, written in decimal digits
 * only. z.coerce.number would also accept `1e2`, `0x10`, ` 5 `, `5.0`, and an empty value as 0, which
 * hides a client's mistake.
 */
export function queryInteger(minimum: number, maximum: number): z.ZodType<number | undefined, string | undefined>;
export function queryInteger(minimum: number, maximum: number, fallback: number): z.ZodType<number, string | undefined>;
export function queryInteger(minimum: number, maximum: number, fallback?: number): z.ZodType<number | undefined, string | undefined> {
  const digits = z
    .string()
    .refine((value) => DECIMAL_DIGITS.test(value), {
      error: `must be a whole number written in decimal digits, from ${minimum} to ${maximum}`,
      params: { rule: 'integer' },
    })
    .transform(Number)
    // Digits make an integer, and the bounds keep it a safe one.
    .pipe(z.number().min(minimum).max(maximum))
    .meta({ type: 'integer', minimum, maximum });
  QUERY_INTEGERS.add(digits);
  return fallback === undefined ? digits.optional() : digits.default(fallback);
}

/** Parses the query parameters with a zod schema. A repeated parameter is a 400 `unique_keys`. */
export function parseQuery<Schema extends z.ZodType>(request: Request, schema: Schema): z.infer<Schema> {
  const url = new URL(request.url);
  const values: Record<string, string> = {};
  for (const [key, value] of url.searchParams) {
    // PostgreSQL text cannot hold NUL, and no filter value needs a control character.
    if (/[\u0000-\u001f\u007f]/.test(value)) {
      throw new ValidationError(`Query parameter ${JSON.stringify(key)} contains a control character.`, [
        { field: key, rule: 'no_control_characters', message: 'control characters, including NUL, are not allowed' },
      ]);
    }
    // No parameter of this API takes a list, and keeping the first or the last value would hide a mistake.
    if (Object.hasOwn(values, key)) {
      throw new ValidationError(`Query parameter ${JSON.stringify(key)} is given more than once.`, [
        { field: key, rule: 'unique_keys', message: 'give each query parameter at most once' },
      ]);
    }
    values[key] = value;
  }
  return parseWithSchema(schema, values, 'The query parameters are invalid.');
}
