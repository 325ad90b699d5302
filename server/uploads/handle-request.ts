import type { Logger } from 'pino';
import { getAppContext, type AppContext } from '../app-context';
import { isDomainError, NotFoundError, PayloadTooLargeError, UnsupportedMediaTypeError, ValidationError } from '../errors';
import { authenticate, requireScope } from '../http/auth';
import { requestIdOf } from '../http/route';
import { requestBodyStream, webStreamOf } from '../http/node-bodies';
import { methodNotAllowedResponse } from '../http/route-methods';
import { errorToResponse, problemResponse } from '../http/problem';
import { observeApiResponse } from '../http/access-log';
import { parsePackageId } from '../registry/packages';
import { parseUploadMetadata } from './metadata';
import { CHECKSUM_ALGORITHMS, uploadRequestStorage, type ChecksumAlgorithm, type ExpectedChecksum, type UploadRequestContext } from './request-context';
import { getUploadService, UPLOAD_ID_PATTERN, UPLOADS_PATH, type UploadService } from './tus-server';

const COLLECTION_METHODS = ['POST', 'OPTIONS'];
const TUS_BODY_TYPE = 'application/offset+octet-stream';
const UPLOAD_METHODS = ['HEAD', 'PATCH', 'DELETE', 'OPTIONS'];

/** The route template of app/api/v1/uploads/[[...id]]/route.ts, the label of every tus request in the HTTP metrics. */
export const UPLOADS_ROUTE_TEMPLATE = '/api/v1/uploads/[[...id]]';

const STATUS_TITLES: Record<number, string> = {
  400: 'Invalid request',
  403: 'Forbidden',
  404: 'Not found',
  409: 'Conflict',
  410: 'Gone',
  412: 'Precondition failed',
  413: 'Payload too large',
  415: 'Unsupported media type',
  423: 'Locked',
  460: 'Checksum mismatch',
  500: 'Internal server error',
  501: 'Not implemented',
};

/**
 * Handles one tus request under /api/v1/uploads: validates the upload id, authenticates (every method but
 * OPTIONS needs the `write` scope), parses Upload-Metadata and Upload-Checksum, passes the request to
 * @tus/server and turns every error response, its own and the library's, into problem+json. Counts the
 * request in the HTTP metrics and the access log.
 */
export async function handleUploadRequest(request: Request): Promise<Response> {
  const startedAt = performance.now();
  const requestId = requestIdOf(request);
  let log: Logger | undefined;
  // The logger of the access log line, which gains the actor once dispatch has authenticated the caller.
  const access: { log?: Logger } = {};
  let response: Response;

  try {
    const app = await getAppContext();
    log = app.log.child({ request_id: requestId });
    access.log = log;
    response = await dispatch(app, request, log, requestId, access);
  } catch (error) {
    response = log
      ? errorToResponse(error, log, requestId)
      : problemResponse(503, 'Service unavailable', 'The server is not ready: its database or storage failed to start.', { request_id: requestId });
    response.headers.set('Tus-Resumable', '1.0.0');
  }
  response.headers.set('X-Request-Id', requestId);
  return observeApiResponse(request, UPLOADS_ROUTE_TEMPLATE, startedAt, response, access.log);
}

async function dispatch(app: AppContext, request: Request, log: Logger, requestId: string, access: { log?: Logger }): Promise<Response> {
  const uploadId = parseUploadId(request.url);
  const method = request.method;
  // POST creates uploads on the collection URL; the other methods act on one upload's URL.
  const allowed = uploadId === null ? COLLECTION_METHODS : UPLOAD_METHODS;
  if (!allowed.includes(method)) return methodNotAllowedResponse(method, new URL(request.url).pathname, allowed.join(', '));

  const service = getUploadService(app);
  if (method === 'OPTIONS') return withChecksumAlgorithms(await service.server.handleWeb(request));

  const principal = requireScope(await authenticate(app.db, request, app.settings.ANON_READ), 'write');
  const callerLog = log.child({ actor: principal.name });
  access.log = callerLog;
  if (method === 'PATCH' || method === 'POST') assertTusBodyType(request);
  const context: UploadRequestContext = { principal, log: uploadId === null ? callerLog : callerLog.child({ upload_id: uploadId }), requestId };
  if (method === 'POST') context.creation = parseCreationTarget(request, app.settings.MAX_FILE_SIZE_BYTES);
  if (method === 'POST' || method === 'PATCH') context.checksum = parseUploadChecksum(request.headers.get('upload-checksum'));
  if (method === 'HEAD') context.completeStagedUpload = true;

  const tusResponse = await uploadRequestStorage.run(context, () => service.server.handleWeb(forwardRequest(request)));
  return toProblemResponse(tusResponse, context, service, uploadId);
}

/**
 * Rejects a PATCH, and a POST that sends a body (creation-with-upload), whose Content-Type is not
 * application/offset+octet-stream with 415, as tus 1.0.0 specifies. @tus/server 2.4.5 would respond with
 * 400 "invalid header" to a PATCH of another type and 403 to one without the header, and would store
 * nothing of such a POST's body without saying so. A POST without a body may carry any Content-Type,
 * because some HTTP clients always send one.
 */
function assertTusBodyType(request: Request): void {
  const contentType = request.headers.get('content-type');
  if (isTusBodyType(contentType)) return;
  if (request.method === 'POST' && !hasBody(request)) return;
  const found = contentType === null ? 'none' : JSON.stringify(contentType);
  throw new UnsupportedMediaTypeError(`A tus ${request.method} with a body must have Content-Type: ${TUS_BODY_TYPE}; this request has ${found}.`);
}

/**
 * Returns whether a Content-Type names application/offset+octet-stream. Media types compare without regard
 * to case (RFC 9110 section 8.3.1), and parameters, which the type does not define, are ignored.
 */
function isTusBodyType(contentType: string | null): boolean {
  return contentType !== null && contentType.split(';')[0].trim().toLowerCase() === TUS_BODY_TYPE;
}

function hasBody(request: Request): boolean {
  const length = request.headers.get('content-length');
  return request.headers.has('transfer-encoding') || (length !== null && length.trim() !== '0');
}

/**
 * Returns the upload id of `/api/v1/uploads/<id>`, or null for the collection URL. The id is checked on
 * the raw, still percent-encoded path, so no encoded `/`, `\`, `..` or NUL ever reaches the store:
 * a malformed percent escape is 400 and anything else that is not an id of ours is 404.
 */
export function parseUploadId(url: string): string | null {
  const pathname = new URL(url).pathname;
  const rest = pathname.slice(UPLOADS_PATH.length);
  if (rest === '' || rest === '/') return null;

  const segment = rest.startsWith('/') ? rest.slice(1).replace(/\/$/, '') : rest;
  if (UPLOAD_ID_PATTERN.test(segment)) return segment;
  try {
    decodeURIComponent(segment);
  } catch {
    throw new ValidationError('The upload URL contains an invalid percent escape.', [
      { field: 'upload_id', rule: 'percent_encoding', message: 'invalid percent escape' },
    ]);
  }
  throw new NotFoundError('Upload', segment);
}

/** Reads package_id, relative_path (or filename) and media_type from Upload-Metadata and checks the declared length. */
function parseCreationTarget(request: Request, maxBytes: number): NonNullable<UploadRequestContext['creation']> {
  const metadata = parseUploadMetadata(request.headers.get('upload-metadata'));
  const packageId = metadata.package_id;
  if (!packageId) {
    throw new ValidationError('Upload-Metadata must name the package as package_id.', [
      { field: 'package_id', rule: 'required', message: 'missing' },
    ]);
  }
  const relativePath = metadata.relative_path ?? metadata.filename;
  if (!relativePath) {
    throw new ValidationError('Upload-Metadata must name the file as relative_path (or filename).', [
      { field: 'relative_path', rule: 'required', message: 'missing' },
    ]);
  }

  const declared = request.headers.get('upload-length');
  if (declared !== null && /^\d+$/.test(declared) && Number(declared) > maxBytes) {
    throw new PayloadTooLargeError(`Upload-Length is ${declared} bytes; the limit is ${maxBytes}.`, { limit_bytes: maxBytes });
  }
  return { packageId: parsePackageId(packageId), relativePath, mediaType: metadata.media_type ?? null };
}

/** Parses `Upload-Checksum: <algorithm> <base64 digest>`; an unsupported algorithm is 400 (tus checksum extension). */
export function parseUploadChecksum(header: string | null): ExpectedChecksum | undefined {
  if (header === null) return undefined;
  const match = /^([a-z0-9-]+) ([A-Za-z0-9+/]+={0,2})$/.exec(header.trim());
  if (!match) {
    throw new ValidationError('Upload-Checksum must be "<algorithm> <base64 digest>".', [
      { field: 'Upload-Checksum', rule: 'format', message: 'expected "<algorithm> <base64 digest>"' },
    ]);
  }
  const algorithm = match[1] as ChecksumAlgorithm;
  if (!CHECKSUM_ALGORITHMS.includes(algorithm)) {
    throw new ValidationError(`Upload-Checksum algorithm "${match[1]}" is not supported; use one of ${CHECKSUM_ALGORITHMS.join(', ')}.`, [
      { field: 'Upload-Checksum', rule: 'algorithm', message: `supported: ${CHECKSUM_ALGORITHMS.join(', ')}` },
    ]);
  }
  return { algorithm, digest: Buffer.from(match[2], 'base64') };
}

/**
 * Copies the request for @tus/server without its query string and with a body that errors as soon as the
 * client disconnects. A Web Request gives the route no socket events, only `request.signal`. Erroring the
 * body makes the store's write fail at once, so the upload's lock is released without waiting for a timeout.
 */
function forwardRequest(request: Request): Request {
  let body: ReadableStream<Uint8Array> | null = null;
  if (request.body) {
    const source = requestBodyStream(request);
    const closeSource = () => source.destroy(new Error('The client closed the connection.'));
    if (request.signal.aborted) closeSource();
    else request.signal.addEventListener('abort', closeSource, { once: true });
    body = webStreamOf(source);
  }
  // @tus/server takes the upload id from the end of the whole URL, so a query string would become part of
  // the id. parseUploadId ignores the query, and so does the library once it is removed here.
  const url = new URL(request.url);
  url.search = '';
  // @tus/server compares the Content-Type of a PATCH with its own spelling, so an accepted variant is
  // passed on in that spelling.
  let headers = request.headers;
  const contentType = headers.get('content-type');
  if (contentType !== null && contentType !== TUS_BODY_TYPE && isTusBodyType(contentType)) {
    headers = new Headers(headers);
    headers.set('content-type', TUS_BODY_TYPE);
  }
  return new Request(url, { method: request.method, headers, body, duplex: 'half' } as RequestInit);
}

/** Lists the Upload-Checksum algorithms the store verifies (tus checksum extension). */
function withChecksumAlgorithms(response: Response): Response {
  response.headers.set('Tus-Checksum-Algorithm', CHECKSUM_ALGORITHMS.join(','));
  return response;
}

/** Passes successful tus responses through; rewrites every error response as problem+json, keeping the tus headers. */
async function toProblemResponse(response: Response, context: UploadRequestContext, service: UploadService, uploadId: string | null): Promise<Response> {
  if (response.status < 400) return response;

  const tusHeaders: Record<string, string> = {};
  for (const name of ['tus-resumable', 'upload-offset', 'upload-expires', 'connection']) {
    const value = response.headers.get(name);
    if (value !== null) tusHeaders[name] = value;
  }

  if (context.error !== undefined) {
    const problem = errorToResponse(context.error, context.log, context.requestId);
    for (const [name, value] of Object.entries(tusHeaders)) problem.headers.set(name, value);
    return problem;
  }

  const detail = (await response.text()).trim();
  const fields: Record<string, unknown> = {};
  if (response.status === 409 && uploadId !== null) {
    // tus 1.0.0: on an offset mismatch the Server MUST respond with 409, and the current offset tells the client where to resume.
    const offset = await currentOffset(service, uploadId);
    if (offset !== undefined) {
      fields.expected_offset = offset;
      tusHeaders['upload-offset'] = String(offset);
    }
  }
  if (response.status === 423) tusHeaders['retry-after'] = '1';
  if (response.status >= 500) context.log.error({ status: response.status, detail }, 'tus request failed');

  const title = STATUS_TITLES[response.status] ?? 'Request failed';
  return problemResponse(response.status, title, detail || title, fields, tusHeaders);
}

async function currentOffset(service: UploadService, uploadId: string): Promise<number | undefined> {
  try {
    return (await service.store.getUpload(uploadId)).offset;
  } catch (error) {
    if (isDomainError(error) || !(error instanceof Error)) return undefined;
    throw error;
  }
}
