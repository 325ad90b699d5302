import { randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { Readable } from 'node:stream';
import type { ReadableStream as NodeReadableStream } from 'node:stream/web';
import { downloadFile } from '../routes/file-download';
import { putFile } from '../routes/file-put';
import { handleUploadRequest } from '../uploads/handle-request';
import { PROBLEM_CONTENT_TYPE } from './problem';
import { attachNodeBody, continueOnFirstRead, nodeBodyOf, webStreamOf } from './node-bodies';
import { methodNotAllowed, routeOfPath } from './route-methods';

/**
 * The data-plane routes that scripts/server.mjs serves itself instead of handing them to Next.js: file
 * downloads, raw PUTs and tus uploads. They run the same route handlers as the app/ route files, with the
 * same authentication, errors and metrics. Only Next.js's request path is skipped. On 2 cores with Next.js
 * 16.5, a bare 404 through it cost the main thread 1.9 ms of CPU, and a 4 KiB range GET 2.6 ms.
 * docs/benchmarks.md has the figures after the change.
 *
 * A request is served here only when its path has the exact shape of one of these routes (no empty, `.`
 * or `..` segment and no trailing slash) and its Host, if any, is a bare authority. Any other request goes
 * to Next.js, which redirects, normalizes or rejects it as it does for every route.
 */
type Handler = (request: Request, context: { params: Promise<Record<string, unknown>> }) => Promise<Response>;

interface DirectRoute {
  /** The methods served here, or null for every method (the handler rejects the others itself). */
  methods: ReadonlySet<string> | null;
  /** Whether responses carry `X-Frame-Options: DENY`, as proxy.ts adds it to the paths it matches. */
  denyFraming: boolean;
  /** Returns the route's params for a path of its shape, or null. */
  match(segments: string[]): Record<string, unknown> | null;
  handler: Handler;
}

const ROUTES: DirectRoute[] = [
  {
    methods: new Set(['GET', 'HEAD']),
    denyFraming: true,
    match: (segments) => (segments.length === 5 && segments[2] === 'files' && segments[4] === 'download' ? { id: decode(segments[3]) } : null),
    handler: downloadFile as Handler,
  },
  {
    methods: new Set(['PUT']),
    denyFraming: false,
    match: (segments) =>
      segments.length >= 6 && segments[2] === 'packages' && segments[4] === 'files'
        ? { id: decode(segments[3]), relative_path: segments.slice(5).map(decode) }
        : null,
    handler: putFile as Handler,
  },
  {
    // The tus handler rejects other methods with the Allow of the exact URL: POST on the collection, the rest on one upload.
    methods: null,
    denyFraming: false,
    match: (segments) => (segments[2] === 'uploads' && segments.length <= 4 ? {} : null),
    handler: handleUploadRequest as Handler,
  },
];

const API_PREFIX = '/api/v1/';

/**
 * Serves the request and returns true when it matches a direct route, or when its path belongs to an API
 * route that does not allow its method (405 problem+json with Allow, from the table in route-methods.ts). Returns false, having touched
 * nothing, for every other request. The path's percent escapes must already be known to be well formed.
 */
export function serveDirectRoute(request: IncomingMessage, response: ServerResponse): boolean {
  const target = request.url ?? '';
  if (!target.startsWith(API_PREFIX)) return false;
  const queryStart = target.indexOf('?');
  const pathname = queryStart === -1 ? target : target.slice(0, queryStart);
  const segments = pathname.slice(1).split('/');
  if (segments[1] !== 'v1' || segments.some((segment) => segment === '' || segment === '.' || segment === '..')) return false;

  const origin = originOfHost(request.headers.host);
  if (origin === null) return false;
  const url = `${origin}${target}`;
  if (!URL.canParse(url)) return false;

  const method = request.method ?? '';
  for (const route of ROUTES) {
    if (route.methods !== null && !route.methods.has(method)) continue;
    const params = route.match(segments);
    if (params === null) continue;
    respond(route.handler, params, route.denyFraming, url, request, response).catch((error) => failed(error, request, response, pathname));
    return true;
  }

  const apiRoute = routeOfPath(pathname);
  if (apiRoute === null || apiRoute.methods.has(method)) return false;
  // The body is not read, so the connection is not kept for the bytes that may follow.
  if (request.headers['content-length'] !== undefined || request.headers['transfer-encoding'] !== undefined) response.setHeader('Connection', 'close');
  const rejectMethod: Handler = (webRequest) => methodNotAllowed(webRequest, apiRoute);
  respond(rejectMethod, {}, false, url, request, response).catch((error) => failed(error, request, response, pathname));
  return true;
}

/**
 * Ends a request whose handler or response failed outside the route wrapper's own error handling: a 500
 * problem+json while no header was sent, else a closed connection, so the client sees the cut.
 */
function failed(error: unknown, request: IncomingMessage, response: ServerResponse, pathname: string): void {
  const requestId = randomUUID();
  console.error(`the direct route failed to serve ${request.method} ${pathname} (request ${requestId}):`, error);
  if (response.headersSent) {
    response.destroy();
    return;
  }
  const body = JSON.stringify({ type: 'about:blank', title: 'Internal server error', status: 500, detail: 'The server failed to process the request.', request_id: requestId });
  response.writeHead(500, { 'Content-Type': PROBLEM_CONTENT_TYPE, 'Content-Length': Buffer.byteLength(body), 'Cache-Control': 'no-store', 'X-Request-Id': requestId });
  response.end(request.method === 'HEAD' ? undefined : body);
}

async function respond(
  handler: Handler,
  params: Record<string, unknown>,
  denyFraming: boolean,
  url: string,
  request: IncomingMessage,
  response: ServerResponse,
): Promise<void> {
  const headers = new Headers();
  for (let index = 0; index < request.rawHeaders.length; index += 2) headers.append(request.rawHeaders[index], request.rawHeaders[index + 1]);
  // scripts/server.mjs replaces the Host of an absolute-form target with the target's authority (RFC 9112
  // section 3.2.2), and @tus/server builds the Location of a new upload from this header.
  if (request.headers.host) headers.set('host', request.headers.host);
  const hasBody = request.method !== 'GET' && request.method !== 'HEAD';
  // As in Next.js, the request's signal aborts when the client goes away before the response is complete.
  const clientGone = new AbortController();
  response.once('close', () => {
    if (!response.writableFinished) clientGone.abort();
  });
  const webRequest = new Request(url, {
    method: request.method,
    headers,
    body: hasBody ? webStreamOf(request) : null,
    duplex: 'half',
    signal: clientGone.signal,
  } as RequestInit);
  if (hasBody) {
    attachNodeBody(webRequest, request);
    continueOnFirstRead(request, response);
  }

  const webResponse = await handler(webRequest, { params: Promise.resolve(params) });
  if (clientGone.signal.aborted || response.destroyed) {
    // The client left while the handler ran, so the body is never read, and an unread body would keep its
    // file open until garbage collection.
    await webResponse.body?.cancel().catch(() => undefined);
    return;
  }

  response.statusCode = webResponse.status;
  for (const [name, value] of webResponse.headers) {
    if (name !== 'set-cookie') response.setHeader(name, value);
  }
  const cookies = webResponse.headers.getSetCookie();
  if (cookies.length > 0) response.setHeader('set-cookie', cookies);
  if (denyFraming) response.setHeader('x-frame-options', 'DENY');
  // A body that ends short of its Content-Length fails the write, so the connection is closed and the
  // client sees the truncation instead of waiting for bytes that never come.
  response.strictContentLength = true;

  if (webResponse.body === null || request.method === 'HEAD') {
    await webResponse.body?.cancel();
    response.end();
    return;
  }
  await sendBody(nodeBodyOf(webResponse) ?? Readable.fromWeb(webResponse.body as NodeReadableStream<Uint8Array>), response);
}

/**
 * Pipes a response body to the client. Resolves when the response closes, complete or because the client
 * went away (which is not a server failure, so the body is destroyed and nothing is thrown). Rejects
 * with the body's error, and the caller then cuts the connection. Unlike `pipeline`, this creates no
 * AbortController per response.
 */
function sendBody(body: Readable, response: ServerResponse): Promise<void> {
  return new Promise((resolve, reject) => {
    if (response.destroyed) {
      body.destroy();
      resolve();
      return;
    }
    body.once('error', reject);
    response.once('close', () => {
      if (!response.writableFinished) body.destroy();
      resolve();
    });
    body.pipe(response);
  });
}

/**
 * Returns `http://<host>` for a Host value that is a bare authority, `http://localhost` for a request without
 * one (HTTP/1.0), and null for a value with userinfo, a path, a query or a fragment. Such a value would
 * change the request URL's path or make `new Request` throw, so Next.js is left to handle the request.
 */
function originOfHost(host: string | undefined): string | null {
  if (!host) return 'http://localhost';
  const withPath = `http://${host}/`;
  if (!URL.canParse(withPath)) return null;
  const parsed = new URL(withPath);
  if (parsed.username !== '' || parsed.password !== '' || parsed.pathname !== '/' || parsed.search !== '' || parsed.hash !== '') return null;
  return parsed.origin;
}

function decode(segment: string): string {
  return decodeURIComponent(segment);
}
