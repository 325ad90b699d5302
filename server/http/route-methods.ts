import { getLogger } from '../logger';
import { observeApiResponse } from './access-log';
import { problemResponse } from './problem';
import { requestIdOf } from './route';

/**
 * The methods of every API route, by its route template under app/. For a method that a route file does
 * not export, Next.js sends an empty 405 without the Allow header that RFC 9110 section 15.5.6 requires.
 * scripts/server.mjs therefore rejects such requests itself, with problem+json and Allow. A unit test
 * checks this table against the exports of the route files.
 */
export const ROUTE_METHODS: Record<string, readonly string[]> = {
  '/api/v1/backends': ['GET'],
  '/api/v1/events': ['GET'],
  '/api/v1/events/export': ['GET'],
  '/api/v1/events/stream': ['GET'],
  '/api/v1/events/verify': ['GET'],
  '/api/v1/files/[id]': ['GET'],
  '/api/v1/files/[id]/download': ['GET', 'HEAD'],
  '/api/v1/health': ['GET'],
  '/api/v1/metadata-schemas': ['GET', 'POST'],
  '/api/v1/metadata-schemas/[slug]': ['GET'],
  '/api/v1/metrics': ['GET'],
  '/api/v1/openapi.json': ['GET'],
  '/api/v1/packages': ['GET', 'POST'],
  '/api/v1/packages/[id]': ['GET', 'DELETE'],
  '/api/v1/packages/[id]/files': ['GET', 'POST'],
  '/api/v1/packages/[id]/files/[...relative_path]': ['PUT'],
  '/api/v1/packages/[id]/finalize': ['POST'],
  '/api/v1/packages/[id]/manifest': ['GET', 'HEAD'],
  '/api/v1/packages/[id]/manifest.json': ['GET', 'HEAD'],
  '/api/v1/packages/[id]/retention': ['GET'],
  '/api/v1/packages/[id]/retention/extensions': ['POST'],
  '/api/v1/packages/[id]/retention/history': ['GET'],
  '/api/v1/packages/[id]/retention/holds': ['GET', 'POST'],
  '/api/v1/packages/[id]/retention/holds/[hold_id]/release': ['POST'],
  '/api/v1/retention-classes': ['GET'],
  '/api/v1/retention/preview': ['GET'],
  '/api/v1/retention/sweep': ['POST'],
  '/api/v1/scrub': ['POST'],
  '/api/v1/session': ['GET', 'POST', 'DELETE'],
  '/api/v1/tokens': ['GET', 'POST'],
  '/api/v1/tokens/[name]': ['DELETE'],
  '/api/v1/uploads/[[...id]]': ['POST', 'HEAD', 'PATCH', 'DELETE', 'OPTIONS'],
};

const METHOD_ORDER = ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS'];

/** An API route's template, the pattern of its paths and the methods it allows. */
export interface RouteMethods {
  template: string;
  pattern: RegExp;
  methods: ReadonlySet<string>;
  /** The methods as the Allow header lists them. */
  allow: string;
}

/** Turns a route template into a pattern over the raw path: `[x]` is one segment, `[...x]` one or more, `[[...x]]` any. */
function compile(template: string, exported: readonly string[]): RouteMethods {
  const source = template
    .split('/')
    .map((segment) => {
      if (segment.startsWith('[[...')) return '(?:/[^/]+)*';
      if (segment.startsWith('[...')) return '(?:/[^/]+)+';
      if (segment.startsWith('[')) return '/[^/]+';
      return segment === '' ? '' : `/${segment.replace(/[.]/g, '\\.')}`;
    })
    .join('');
  // Next.js serves HEAD from GET, and OPTIONS for every route file.
  const methods = new Set([...exported, ...(exported.includes('GET') ? ['HEAD'] : []), 'OPTIONS']);
  return { template, pattern: new RegExp(`^${source}$`), methods, allow: METHOD_ORDER.filter((method) => methods.has(method)).join(', ') };
}

const ROUTES = Object.entries(ROUTE_METHODS).map(([template, methods]) => compile(template, methods));

/** Returns the API route of a request path, or null for a path of no route. */
export function routeOfPath(pathname: string): RouteMethods | null {
  return ROUTES.find((route) => route.pattern.test(pathname)) ?? null;
}

/** Builds the 405 problem+json for `method` on `pathname`, with the Allow header RFC 9110 requires. */
export function methodNotAllowedResponse(method: string, pathname: string, allow: string, headers: Record<string, string> = {}): Response {
  return problemResponse(
    405,
    'Method not allowed',
    `${method} is not allowed on ${pathname}. Allowed methods: ${allow}.`,
    { errors: [{ field: '(method)', rule: 'allowed_method', message: `expected one of ${allow}` }] },
    { ...headers, Allow: allow },
  );
}

/** Rejects a method that the route does not allow with 405, counted in the HTTP metrics and the access log under the route. */
export async function methodNotAllowed(request: Request, route: RouteMethods): Promise<Response> {
  const startedAt = performance.now();
  const requestId = requestIdOf(request);
  const response = methodNotAllowedResponse(request.method, new URL(request.url).pathname, route.allow, { 'X-Request-Id': requestId });
  return observeApiResponse(request, route.template, startedAt, response, getLogger().child({ request_id: requestId }));
}
