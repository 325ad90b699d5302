/**
 * The production HTTP server: the Next.js request handler of the build in NEXT_DIST_DIR (default .next) on
 * a node:http server, listening on HOST:PORT (default 127.0.0.1:3000). Before Next.js handles a request, the
 * server rejects a path with a malformed percent escape with 400 problem+json (see percent-encoding.mjs),
 * and it keeps Next.js from compressing API responses.
 *
 * Run it with plain `node scripts/server.mjs` after `npm run build`. It loads no TypeScript loader and
 * starts no child process, so a SIGTERM or SIGKILL sent to this process reaches the server itself.
 * SIGINT and SIGTERM stop accepting connections and close idle keep-alive connections. Open requests get
 * at most SHUTDOWN_GRACE_SECONDS (default 30) to finish, because event streams never finish by themselves.
 * Then the server closes the connections still open, Next.js and the database (which gives back the
 * embedded database's lock) and exits with 130 or 143. A connection whose request body sends no byte for
 * BODY_IDLE_TIMEOUT_SECONDS (default 60) is closed.
 */
import crypto from 'node:crypto';
import http from 'node:http';
import path from 'node:path';
import v8 from 'node:v8';
import { fileURLToPath } from 'node:url';
import { findMalformedSegment, invalidTargetProblem, malformedPathProblem, pathOfRequestTarget, splitAbsoluteForm } from './percent-encoding.mjs';

// V8 lets the old generation grow to up to four times what the last full collection kept, the most when
// collecting is cheap (MemoryController in V8's src/heap/heap-controller.cc, which reads this flag at each
// collection). After 30,000 small PUTs the heap kept 50 MB of 230 MB, and the process stayed at 340 MiB
// until it was idle. At twice the kept size it stayed near 230 MiB, for a few more collections of 5 to
// 20 ms each (docs/benchmarks.md, P3). A --heap-growing-percent given to node takes precedence.
if (!process.execArgv.some((arg) => /^--heap[-_]growing[-_]percent\b/.test(arg))) v8.setFlagsFromString('--heap-growing-percent=100');

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const REQUEST_ID_PATTERN = /^[A-Za-z0-9._-]{1,128}$/;
const DATABASE_CLOSE_TIMEOUT_MS = 5000;
const NEXT_CLOSE_TIMEOUT_MS = 5000;
// A stalled body is closed between BODY_IDLE_TIMEOUT_SECONDS and a quarter period more after its last byte.
const BODY_IDLE_CHECKS_PER_PERIOD = 4;
const API_PREFIX = '/api';
const DIRECT_ROUTES = Symbol.for('artifact-store.serveDirectRoute');
// Marks a request sent with `Expect: 100-continue` whose interim 100 response has not been sent yet.
const CONTINUE_PENDING = Symbol.for('artifact-store.continuePending');
const UPLOADS_PREFIX = '/api/v1/uploads';

// As `next start` does (next/dist/bin/next, Next.js 16.5): production unless NODE_ENV is already set, and
// both set before Next.js and React load, because they pick their builds from NODE_ENV when loaded.
process.env.NODE_ENV ||= 'production';
process.env.NEXT_RUNTIME = 'nodejs';
const { default: next } = await import('next');

const hostname = process.env.HOST || '127.0.0.1';
const port = parsePort(process.env.PORT ?? '3000');
const shutdownGraceSeconds = parseSeconds('SHUTDOWN_GRACE_SECONDS', process.env.SHUTDOWN_GRACE_SECONDS ?? '30');
const bodyIdleTimeoutSeconds = parseSeconds('BODY_IDLE_TIMEOUT_SECONDS', process.env.BODY_IDLE_TIMEOUT_SECONDS ?? '60');

const server = http.createServer(handleRequest);
// By default Node.js sends 100 to a request with `Expect: 100-continue` before any handler runs, so a
// client sent its whole body also to a request about to be rejected (a bad token, a taken path). The
// direct routes send the 100 when the handler first reads the body, and Next.js gets it at once, as
// before. Node.js closes the connection after a final response that follows no 100, so an unsent body
// cannot be mistaken for the next request.
server.on('checkContinue', (request, response) => {
  request[CONTINUE_PENDING] = true;
  handleRequest(request, response);
});
// `next start` keeps Node.js's defaults: headersTimeout 60 s, keepAliveTimeout 5 s and requestTimeout
// 300 s. The request timeout covers receiving the whole body, so it would cut a tus PATCH or a raw PUT of
// 1 GiB that arrives slower than about 3.6 MB/s with 408. It is turned off here; headersTimeout still
// limits how long a client may take to send the request headers.
server.requestTimeout = 0;

const app = next({ dev: false, dir: ROOT, hostname, port, httpServer: server });
const handleWithNext = app.getRequestHandler();
await app.prepare();

server.on('error', (error) => {
  console.error(`artifact-store failed to listen on ${hostname}:${port}:`, error);
  process.exit(1);
});
server.listen(port, hostname, () => console.log(`artifact-store listening on http://${hostname}:${port}`));

let stopping = false;
for (const signal of ['SIGINT', 'SIGTERM']) {
  process.on(signal, () => {
    if (stopping) return;
    stopping = true;
    console.log(`artifact-store received ${signal}; stopping after open requests finish, at most ${shutdownGraceSeconds} s`);
    // Long polls and event streams would otherwise hold the shutdown for the whole grace period.
    globalThis[Symbol.for('artifact-store.stopEventWaiters')]?.();
    const forced = setTimeout(() => {
      console.log(`artifact-store is closing the connections still open after ${shutdownGraceSeconds} s`);
      server.closeAllConnections();
    }, shutdownGraceSeconds * 1000);
    server.close(async (error) => {
      clearTimeout(forced);
      if (error) console.error('closing the HTTP server failed:', error);
      // NOTE: Next.js's close never returned after a client closed a connection on which a long poll had a
      // request pipelined behind it (the cause is not known), so the exit waits for it only so long.
      await settleWithin(
        app.close().catch((closeError) => console.error('closing Next.js failed:', closeError)),
        NEXT_CLOSE_TIMEOUT_MS,
        'closing Next.js',
      );
      const closeDatabase = globalThis[Symbol.for('artifact-store.closeDatabase')];
      if (closeDatabase) {
        // A query stuck on an unreachable database can keep the pool from closing.
        const closed = closeDatabase().then(
          () => console.log('artifact-store closed the database'),
          (closeError) => console.error('closing the database failed:', closeError),
        );
        await settleWithin(closed, DATABASE_CLOSE_TIMEOUT_MS, 'closing the database');
      }
      process.exit(signal === 'SIGINT' ? 130 : 143);
    });
    server.closeIdleConnections();
  });
}

/**
 * Responds itself to `OPTIONS *`, to a target that is not a path and to a path with a malformed percent escape,
 * rewrites an absolute-form target to origin form, and hands every other request to Next.js.
 *
 * @param {http.IncomingMessage} request
 * @param {http.ServerResponse} response
 */
function handleRequest(request, response) {
  limitBodyIdleTime(request, response);
  const target = request.url ?? '/';
  if (!target.startsWith('/')) {
    // Next.js 16.5 returns a plain-text 500 for `*` and a 308 redirect to the target itself for an
    // absolute-form target. RFC 9112 section 3.2.2 makes a server accept absolute-form and take the
    // host from it.
    const absolute = splitAbsoluteForm(target);
    if (absolute !== null) {
      request.url = absolute.originForm;
      request.headers.host = absolute.authority;
    } else if (target === '*' && request.method === 'OPTIONS') {
      response.writeHead(204, { Allow: 'GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS' });
      response.end();
      return;
    } else {
      sendProblem(request, response, '', invalidTargetProblem(target));
      return;
    }
  }

  const requestPath = pathOfRequestTarget(request.url);
  const segment = findMalformedSegment(requestPath);
  if (segment !== null) {
    sendProblem(request, response, requestPath, malformedPathProblem(requestPath, segment));
    return;
  }

  // Next.js gzips any compressible response whose client accepts gzip, dropping Content-Length. For the
  // API that is wrong twice over: a text file's download or 206 range would go out re-encoded under the
  // stored bytes' strong ETag and Content-Range, and every small JSON reply would pay for a gzip stream.
  // API responses are therefore sent as stored; the console's pages and scripts are still compressed.
  if (requestPath === API_PREFIX || requestPath.startsWith(`${API_PREFIX}/`)) delete request.headers['accept-encoding'];

  // instrumentation.ts installs this handler while Next.js prepares. It serves downloads, raw PUTs and tus uploads itself.
  const serveDirectRoute = globalThis[DIRECT_ROUTES];
  if (typeof serveDirectRoute === 'function' && serveDirectRoute(request, response)) return;

  if (request[CONTINUE_PENDING]) response.writeContinue();
  handleWithNext(request, response).catch((error) => {
    console.error(`Next.js failed to handle ${request.method} ${request.url}:`, error);
    if (!response.headersSent) response.statusCode = 500;
    response.end();
  });
}

/**
 * Sends a 400 problem+json, without a body for HEAD. The request body is not read, so a request that
 * has one gets `Connection: close` instead of keeping the connection for its bytes.
 *
 * @param {http.IncomingMessage} request
 * @param {http.ServerResponse} response
 * @param {string} requestPath the request path, or '' when the target has none
 * @param {object} problem
 */
function sendProblem(request, response, requestPath, problem) {
  const body = JSON.stringify(problem);
  const supplied = request.headers['x-request-id'];
  /** @type {Record<string, string | number>} */
  const headers = {
    'Content-Type': 'application/problem+json',
    'Content-Length': Buffer.byteLength(body),
    'Cache-Control': 'no-store',
    'X-Request-Id': typeof supplied === 'string' && REQUEST_ID_PATTERN.test(supplied) ? supplied : crypto.randomUUID(),
  };
  // tus 1.0.0: the Tus-Resumable header MUST be sent in every response except to OPTIONS.
  const isUploadPath = requestPath === UPLOADS_PREFIX || requestPath.startsWith(`${UPLOADS_PREFIX}/`);
  if (isUploadPath && request.method !== 'OPTIONS') headers['Tus-Resumable'] = '1.0.0';
  if (request.headers['content-length'] !== undefined || request.headers['transfer-encoding'] !== undefined) headers.Connection = 'close';

  response.writeHead(400, headers);
  response.end(request.method === 'HEAD' ? undefined : body);
}

/**
 * Closes the connection when a request body sends no byte for BODY_IDLE_TIMEOUT_SECONDS, as nginx's
 * client_body_timeout does. Without it a client that vanished mid-body (a sleeping laptop, a dropped NAT
 * entry) keeps its connection open for good, and a tus PATCH keeps its upload's lock, so every resume
 * gets 423. The bytes received before the cut stay stored, and the client resumes from the upload's
 * offset.
 *
 * The check reads the socket's byte count a few times per period until the body is complete or the
 * response closes. A socket timeout would be simpler, but it belongs to the connection: it fires during a
 * handler's own wait after the body, and on a response pipelined before or after this request.
 *
 * @param {http.IncomingMessage} request
 * @param {http.ServerResponse} response
 */
function limitBodyIdleTime(request, response) {
  if (bodyIdleTimeoutSeconds === 0) return;
  if (request.headers['content-length'] === undefined && request.headers['transfer-encoding'] === undefined) return;
  const socket = request.socket;
  const limitMs = bodyIdleTimeoutSeconds * 1000;
  let bytesRead = socket.bytesRead;
  let lastByteAt = Date.now();
  const check = setInterval(() => {
    if (request.complete) {
      clearInterval(check);
      return;
    }
    if (socket.bytesRead !== bytesRead) {
      bytesRead = socket.bytesRead;
      lastByteAt = Date.now();
      return;
    }
    if (Date.now() - lastByteAt < limitMs) return;
    clearInterval(check);
    // The server may also have left the body unread for that long (a handler waiting for the database).
    console.warn(
      `artifact-store closed the connection of ${request.method} ${pathOfRequestTarget(request.url ?? '')} because no byte of its request body arrived for ${bodyIdleTimeoutSeconds} s`,
    );
    socket.destroy();
  }, limitMs / BODY_IDLE_CHECKS_PER_PERIOD);
  check.unref();
  response.once('close', () => clearInterval(check));
}

/**
 * Waits for `promise` at most `timeoutMs`, and logs when the wait ran out, so a shutdown step that hangs
 * cannot keep the process from exiting.
 *
 * @param {Promise<unknown>} promise
 * @param {number} timeoutMs
 * @param {string} step what the promise does, for the log line
 */
async function settleWithin(promise, timeoutMs, step) {
  let timer;
  const timedOut = new Promise((resolve) => {
    timer = setTimeout(() => {
      console.error(`${step} timed out after ${timeoutMs} ms; exiting without it`);
      resolve(undefined);
    }, timeoutMs);
  });
  await Promise.race([promise, timedOut]);
  clearTimeout(timer);
}

/**
 * @param {string} name
 * @param {string} value
 */
function parseSeconds(name, value) {
  const parsed = Number(value);
  if (!/^\d+$/.test(value) || parsed > 3600) {
    console.error(`Invalid ${name} ${JSON.stringify(value)}: expected a whole number of seconds from 0 to 3600.`);
    process.exit(1);
  }
  return parsed;
}

/** @param {string} value */
function parsePort(value) {
  const parsed = Number(value);
  if (!/^\d+$/.test(value) || parsed > 65535) {
    console.error(`Invalid PORT ${JSON.stringify(value)}: expected a whole number from 0 to 65535.`);
    process.exit(1);
  }
  return parsed;
}
