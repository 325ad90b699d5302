/**
 * Domain errors. Each carries the HTTP status it maps to and extra problem fields; server/http/problem.ts
 * turns any of them into an RFC 9457 problem+json response. Any other error becomes a bare 500.
 */
import { z } from 'zod';

export type ProblemFields = Record<string, unknown>;

/**
 * Brand of every DomainError. Next.js bundles route handlers and the instrumentation hook separately,
 * each with its own copy of this module, so an error thrown by an object that another bundle created
 * (a storage backend, for one) fails `instanceof`. The registered symbol is the same in every bundle.
 */
const DOMAIN_ERROR_BRAND = Symbol.for('artifact-store.DomainError');

export class DomainError extends Error {
  override name = 'DomainError';
  readonly [DOMAIN_ERROR_BRAND] = true;
  readonly status: number;
  readonly title: string;
  readonly fields: ProblemFields;
  readonly headers: Record<string, string>;

  constructor(
    status: number,
    title: string,
    detail: string,
    fields: ProblemFields = {},
    headers: Record<string, string> = {},
    options?: { cause?: unknown },
  ) {
    super(detail, options);
    this.status = status;
    this.title = title;
    this.fields = fields;
    this.headers = headers;
  }
}

/** One invalid input of a 400 response: the field (a dotted path, a header or `(body)`), the rule it broke and why. */
export const ValidationIssue = z.object({ field: z.string(), rule: z.string(), message: z.string() });
export type ValidationIssue = z.infer<typeof ValidationIssue>;

/** Returns true for a DomainError of any bundle's copy of this module. */
export function isDomainError(error: unknown): error is DomainError {
  return error instanceof DomainError || (typeof error === 'object' && error !== null && (error as Record<symbol, unknown>)[DOMAIN_ERROR_BRAND] === true);
}

export class ValidationError extends DomainError {
  override name = 'ValidationError';
  constructor(detail: string, errors: ValidationIssue[], fields: ProblemFields = {}) {
    super(400, 'Invalid request', detail, { ...fields, errors });
  }
}

export class NotFoundError extends DomainError {
  override name = 'NotFoundError';
  constructor(what: string, id: string) {
    super(404, 'Not found', `${what} ${JSON.stringify(id)} does not exist.`);
  }
}

export class ConflictError extends DomainError {
  override name = 'ConflictError';
  constructor(detail: string, fields: ProblemFields = {}) {
    super(409, 'Conflict', detail, fields);
  }
}

export class GoneError extends DomainError {
  override name = 'GoneError';
  constructor(detail: string, fields: ProblemFields = {}) {
    super(410, 'Gone', detail, fields);
  }
}

export class UnprocessableContentError extends DomainError {
  override name = 'UnprocessableContentError';
  constructor(detail: string, fields: ProblemFields = {}) {
    super(422, 'Unprocessable content', detail, fields);
  }
}

export class PayloadTooLargeError extends DomainError {
  override name = 'PayloadTooLargeError';
  constructor(detail: string, fields: ProblemFields = {}) {
    super(413, 'Payload too large', detail, fields);
  }
}

export class UnsupportedMediaTypeError extends DomainError {
  override name = 'UnsupportedMediaTypeError';
  constructor(detail: string) {
    super(415, 'Unsupported media type', detail);
  }
}

export class RangeNotSatisfiableError extends DomainError {
  override name = 'RangeNotSatisfiableError';
  constructor(size: number) {
    super(416, 'Range not satisfiable', `The requested range is outside the ${size} bytes of this file.`, {}, {
      'Content-Range': `bytes */${size}`,
    });
  }
}

export class ServiceUnavailableError extends DomainError {
  override name = 'ServiceUnavailableError';
  constructor(detail: string, options?: { cause?: unknown; title?: string; fields?: ProblemFields; headers?: Record<string, string> }) {
    super(503, options?.title ?? 'Service unavailable', detail, options?.fields ?? {}, options?.headers ?? {}, options);
  }
}

const REALM = 'Bearer realm="artifact-store"';

/** 401 as RFC 6750 section 3 describes: a bare challenge without a token, `invalid_token` with a bad one. */
export class UnauthorizedError extends DomainError {
  override name = 'UnauthorizedError';
  constructor(detail: string, invalidToken: boolean) {
    super(401, 'Unauthorized', detail, {}, {
      'WWW-Authenticate': invalidToken
        ? `${REALM}, error="invalid_token", error_description="The token is unknown or revoked"`
        : REALM,
    });
  }
}

export class ForbiddenError extends DomainError {
  override name = 'ForbiddenError';
  constructor(scope: string) {
    super(403, 'Forbidden', `This request needs a token with the "${scope}" scope.`, { required_scope: scope }, {
      'WWW-Authenticate': `${REALM}, error="insufficient_scope", scope="${scope}"`,
    });
  }
}
