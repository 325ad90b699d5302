import type { Logger } from 'pino';
import { observeHttpResponse } from '../metrics/http';
import { getSettings } from '../settings';

/** Maximum length of the path and query that an access log line contains; the rest is cut off. */
const MAX_LOGGED_PATH_LENGTH = 2048;

/**
 * Counts an API request in the HTTP metrics under `route` and, with ACCESS_LOG, writes its access log line
 * through `log` once the response has ended, or once the client has gone away before that (`complete`
 * false). `log` carries the request id and, once the caller is known, the actor. Returns the response to
 * send: for HEAD, one without a body, because Next.js neither reads nor cancels the body of a HEAD
 * response, and a stream behind it would otherwise never end.
 */
export function observeApiResponse(request: Request, route: string, startedAt: number, response: Response, log: Logger | undefined): Response {
  let sent = response;
  if (request.method === 'HEAD' && response.body !== null) {
    response.body.cancel().catch(() => undefined);
    sent = new Response(null, { status: response.status, statusText: response.statusText, headers: response.headers });
  }

  const accessLog = log !== undefined && getSettings().ACCESS_LOG ? log : undefined;
  const status = sent.status;
  return observeHttpResponse(route, request.method, startedAt, sent, request.signal, (end) => {
    if (!accessLog) return;
    const url = new URL(request.url);
    accessLog.info(
      {
        method: request.method,
        path: `${url.pathname}${url.search}`.slice(0, MAX_LOGGED_PATH_LENGTH),
        status,
        duration_ms: Math.round(end.durationSeconds * 1e4) / 10,
        complete: end.complete,
      },
      'request',
    );
  });
}
