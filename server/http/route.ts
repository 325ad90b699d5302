import crypto from 'node:crypto';
import type { Logger } from 'pino';
import { getAppContext, type AppContext } from '../app-context';
import type { Principal, Scope } from '../registry/tokens';
import { UnauthorizedError } from '../errors';
import { routeTemplate } from '../metrics/http';
import { observeApiResponse } from './access-log';
import { authenticate, requireScope } from './auth';
import { errorToResponse, problemResponse } from './problem';

export interface RouteInput<Params> {
  request: Request;
  params: Params;
  app: AppContext;
  log: Logger;
  /** The authenticated caller; non-null whenever the route names a scope. */
  principal: Principal;
  requestId: string;
}

export interface RouteOptions {
  /** The scope the caller needs; null for routes that anyone may call (health). */
  scope: Scope | null;
  /**
   * Whether a route open to anyone looks up the caller's credentials (default true). Health sets it to
   * false, because looking up a token needs the database, whose outage health must report as a 503.
   */
  identifyCaller?: boolean;
}

type RouteHandler<Params> = (input: RouteInput<Params>) => Promise<Response>;

const REQUEST_ID_PATTERN = /^[A-Za-z0-9._-]{1,128}$/;

/** Returns the client's X-Request-Id when it is 1 to 128 safe characters, or a new random id. */
export function requestIdOf(request: Request): string {
  const supplied = request.headers.get('x-request-id');
  return supplied && REQUEST_ID_PATTERN.test(supplied) ? supplied : crypto.randomUUID();
}
const NOBODY: Principal = { tokenId: null, name: 'anonymous', scopes: new Set(), via: 'anonymous' };

/**
 * Wraps a route handler: assigns a request id, authenticates and checks the scope, gives the handler a
 * child logger with the request id and actor, turns any thrown error into problem+json, counts the
 * request in the HTTP metrics under its route template and, with ACCESS_LOG, logs it once its response
 * has ended.
 */
export function apiRoute<Params = Record<string, never>>(options: RouteOptions, handler: RouteHandler<Params>) {
  return async (request: Request, context: { params: Promise<Params> }): Promise<Response> => {
    const startedAt = performance.now();
    const requestId = requestIdOf(request);
    let appLog: Logger | undefined;
    let log: Logger | undefined;
    let response: Response;

    try {
      const app = await getAppContext();
      appLog = app.log;
      let principal: Principal;
      if (options.scope !== null) {
        principal = requireScope(await authenticate(app.db, request, app.settings.ANON_READ), options.scope);
      } else if (options.identifyCaller === false) {
        principal = NOBODY;
      } else {
        principal = await authenticateOptional(app, request);
      }
      // One child logger per request: creating a pino child costs about 10 µs.
      log = app.log.child({ request_id: requestId, actor: principal.name });
      const params = await context.params;
      response = await handler({ request, params, app, log, principal, requestId });
    } catch (error) {
      // An error before authentication finished (a rejected token, say) leaves no request logger yet.
      log ??= appLog?.child({ request_id: requestId });
      if (log && request.signal.aborted) {
        // The client went away mid-request (a cut upload body, say), so no client reads this response and the
        // error is not the server's. 499 is the status nginx records for it.
        log.info({ err: error }, 'the client closed the connection before the response');
        response = problemResponse(499, 'Client closed request', 'The client closed the connection before the response.', { request_id: requestId });
      } else if (log) {
        response = errorToResponse(error, log, requestId);
      } else {
        // The context itself failed to start (database unreachable, bad settings).
        console.error(error);
        response = problemResponse(503, 'Service unavailable', 'The server is not ready: its database or storage failed to start.', {
          request_id: requestId,
        });
      }
    }

    response.headers.set('X-Request-Id', requestId);
    const params = await Promise.resolve(context.params).catch(() => undefined);
    return observeApiResponse(request, routeTemplate(new URL(request.url).pathname, params), startedAt, response, log);
  };
}

/** Routes open to anyone still learn who calls; stale credentials there mean "nobody", not 401. */
async function authenticateOptional(app: AppContext, request: Request): Promise<Principal> {
  try {
    return (await authenticate(app.db, request, app.settings.ANON_READ)) ?? NOBODY;
  } catch (error) {
    if (error instanceof UnauthorizedError) return NOBODY;
    throw error;
  }
}

/** A JSON response with the given status and no caching. */
export function jsonResponse(body: unknown, status = 200, headers: Record<string, string> = {}): Response {
  const bytes = Buffer.from(JSON.stringify(body), 'utf8');
  return new Response(bytes, {
    status,
    headers: { 'Content-Type': 'application/json', 'Content-Length': String(bytes.byteLength), 'Cache-Control': 'no-store', ...headers },
  });
}
