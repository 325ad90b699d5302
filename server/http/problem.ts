import type { Logger } from 'pino';
import { z } from 'zod';
import { isDatabaseUnavailable } from '@/db/unavailable';
import { isDomainError, ValidationIssue } from '../errors';

export const PROBLEM_CONTENT_TYPE = 'application/problem+json';

/** The Retry-After of a 503 while the database cannot be reached. */
const DATABASE_RETRY_AFTER_SECONDS = 5;

const Timestamp = z.iso.datetime();

/**
 * An RFC 9457 problem details body. `type` is always `about:blank`, so `title` is the status phrase and
 * `detail` says what failed. The extension members listed here appear only where they help; others may
 * be added, so clients must ignore members they do not know.
 */
export const Problem = z.looseObject({
  type: z.string(),
  title: z.string(),
  status: z.number().int().min(400).max(599),
  detail: z.string(),
  errors: z.array(ValidationIssue).optional().meta({ description: 'Every invalid input of a 400 response.' }),
  request_id: z.string().optional().meta({ description: 'The X-Request-Id of a request that failed on the server side.' }),
  required_scope: z.string().optional().meta({ description: 'The scope a 403 response asks for.' }),
  limit_bytes: z.number().int().optional().meta({ description: 'The size limit that a 413 response enforces.' }),
  max_bytes: z.number().int().optional().meta({ description: 'The same as `limit_bytes`, sent only when a body passed the limit while streaming; kept for clients written against earlier versions.' }),
  expected_offset: z.number().int().optional().meta({ description: 'tus: the upload offset to resume from after a 409.' }),
  package_id: z.string().optional(),
  package_status: z.string().optional(),
  path: z.string().optional().meta({ description: 'The relative path that a 400 or 409 response is about.' }),
  conflicting_path: z.string().optional(),
  hold_id: z.string().optional(),
  released_at: Timestamp.optional(),
  released_by: z.string().optional(),
  slug: z.string().optional(),
  backend_id: z.string().optional().meta({ description: 'The storage backend that a 503 response names as unavailable.' }),
  current_expires_at: Timestamp.nullable().optional(),
  requested_expires_at: Timestamp.optional(),
  last_sequence: z.number().int().optional().meta({ description: 'The sequence of the last event, in a 409 for a cursor beyond it.' }),
  unfinished_uploads: z.array(z.object({ upload_id: z.string(), relative_path: z.string() })).optional(),
});
export type Problem = z.infer<typeof Problem>;

/** Builds an RFC 9457 problem+json response. */
export function problemResponse(
  status: number,
  title: string,
  detail: string,
  fields: Record<string, unknown> = {},
  headers: Record<string, string> = {},
): Response {
  const body = { type: 'about:blank', title, status, detail, ...fields };
  return new Response(JSON.stringify(body), {
    status,
    headers: { ...headers, 'Content-Type': PROBLEM_CONTENT_TYPE, 'Cache-Control': 'no-store' },
  });
}

/**
 * Maps any thrown value to problem+json. Domain errors keep their status, detail and fields. An error
 * that means the database cannot be reached is a 503 with Retry-After, so clients retry. Anything else
 * is logged with its stack and gets a bare 500 that reveals nothing of the cause.
 */
export function errorToResponse(error: unknown, log: Logger, requestId?: string): Response {
  if (isDomainError(error)) {
    if (error.status >= 500) log.error({ err: error }, 'request failed with a server-side error');
    return problemResponse(error.status, error.title, error.message, error.fields, error.headers);
  }
  if (isDatabaseUnavailable(error)) {
    log.error({ err: error }, 'request failed because the database is unavailable');
    return problemResponse(
      503,
      'Database unavailable',
      'The server cannot reach its database. Retry later; GET /api/v1/health reports when the database is back.',
      { request_id: requestId },
      { 'Retry-After': String(DATABASE_RETRY_AFTER_SECONDS) },
    );
  }
  log.error({ err: error }, 'unexpected error');
  return problemResponse(500, 'Internal server error', 'The server failed to process the request.', {
    request_id: requestId,
  });
}
