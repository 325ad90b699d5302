/**
 * Domain errors. Each carries the HTTP status it maps to and extra problem fields; server/http/problem.ts
 * turns any of them into an RFC 9457 problem+json response. Any other error becomes a bare 500.
 */
import { z } from 'zod';

export type ProblemFields = Record<string, unknown>;

export class DomainError extends Error {
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
    this.name = new.target.name;
    this.status = status;
    this.title = title;
    this.fields = fields;
    this.headers = headers;
  }
}

/** One invalid input of a 400 response: the field (a dotted path, a header or `(body)`), the rule it broke and why. */
export const ValidationIssue = z.object({ field: z.string(), rule: z.string(), message: z.string() });
export type ValidationIssue = z.infer<typeof ValidationIssue>;

export class ValidationError extends DomainError {
  constructor(detail: string, errors: ValidationIssue[], fields: ProblemFields = {}) {
    super(400, 'Invalid request', detail, { ...fields, errors });
  }
}

export class NotFoundError extends DomainError {
  constructor(what: string, id: string) {
    super(404, 'Not found', `${what} ${JSON.stringify(id)} does not exist.`);
  }
}

export class ConflictError extends DomainError {
  constructor(detail: string, fields: ProblemFields = {}) {
    super(409, 'Conflict', detail, fields);
  }
}

export class GoneError extends DomainError {
  constructor(detail: string, fields: ProblemFields = {}) {
    super(410, 'Gone', detail, fields);
  }
}

export class PayloadTooLargeError extends DomainError {
  constructor(detail: string, fields: ProblemFields = {}) {
    super(413, 'Payload too large', detail, fields);
  }
}

export class UnsupportedMediaTypeError extends DomainError {
  constructor(detail: string) {
    super(415, 'Unsupported media type', detail);
  }
}

export class RangeNotSatisfiableError extends DomainError {
  constructor(size: number) {
    super(416, 'Range not satisfiable', `The requested range is outside the ${size} bytes of this file.`, {}, {
      'Content-Range': `bytes */${size}`,
    });
  }
}

export class ServiceUnavailableError extends DomainError {
  constructor(detail: string, options?: { cause?: unknown }) {
    super(503, 'Service unavailable', detail, {}, {}, options);
  }
}

const REALM = 'Bearer realm="artifact-store"';

/** 401 as RFC 6750 section 3 describes: a bare challenge without a token, `invalid_token` with a bad one. */
export class UnauthorizedError extends DomainError {
  constructor(detail: string, invalidToken: boolean) {
    super(401, 'Unauthorized', detail, {}, {
      'WWW-Authenticate': invalidToken
        ? `${REALM}, error="invalid_token", error_description="The token is unknown or revoked"`
        : REALM,
    });
  }
}

export class ForbiddenError extends DomainError {
  constructor(scope: string) {
    super(403, 'Forbidden', `This request needs a token with the "${scope}" scope.`, { required_scope: scope }, {
      'WWW-Authenticate': `${REALM}, error="insufficient_scope", scope="${scope}"`,
    });
  }
}
