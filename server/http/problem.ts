import { DomainError } from '../errors';
import type { Logger } from 'pino';

export const PROBLEM_CONTENT_TYPE = 'application/problem+json';

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
 * Maps any thrown value to problem+json. Domain errors keep their status, detail and fields; anything
 * else is logged with its stack and answered with a bare 500 that reveals nothing of the cause.
 */
export function errorToResponse(error: unknown, log: Logger, requestId?: string): Response {
  if (error instanceof DomainError) {
    if (error.status >= 500) log.error({ err: error }, 'request failed with a server-side error');
    return problemResponse(error.status, error.title, error.message, error.fields, error.headers);
  }
  log.error({ err: error }, 'unexpected error');
  return problemResponse(500, 'Internal server error', 'The server failed to process the request.', {
    request_id: requestId,
  });
}
