import { Transform, type Readable } from 'node:stream';
import { nodeBodyOf, pipeThrough } from '../http/node-bodies';
import { getMetrics } from './registry';

/** The label used when a route template cannot be rebuilt from the path and parameters. */
export const UNMATCHED_ROUTE = '(unmatched)';

const MAX_TEMPLATE_LENGTH = 512;

/**
 * Rebuilds the route template, such as `/api/v1/packages/[id]/files/[...relative_path]`, from a request
 * path and the route parameters that Next.js matched, so that metric labels carry no ids or file paths.
 *
 * Next.js passes the parameters in the order of their segments, and a catch-all is always the last
 * segment, so its values are the last path segments. Each other parameter replaces the first segment,
 * after the previous parameter's, whose decoded value equals it.
 * NOTE: a parameter whose value equals a static segment before it (`/files/files/download` with id
 * `files`) lands on that static segment. The label is then wrong but still bounded, because every
 * segment left unreplaced is a static segment of the route or equals one. When a parameter is not in
 * the path at all, the result is UNMATCHED_ROUTE.
 */
export function routeTemplate(pathname: string, params: unknown): string {
  const segments = pathname.split('/').filter((segment) => segment !== '');
  const decoded = segments.map(decodeSegment);
  const template = [...segments];
  let end = segments.length;
  let cursor = 0;

  const entries: [string, unknown][] = params !== null && typeof params === 'object' ? Object.entries(params) : [];
  const catchAll = entries.find(([, value]) => Array.isArray(value));
  if (catchAll) {
    const values = catchAll[1] as string[];
    end = segments.length - values.length;
    if (end < 0) return UNMATCHED_ROUTE;
  }

  for (const [name, value] of entries) {
    if (typeof value !== 'string') continue;
    const index = decoded.indexOf(value, cursor);
    if (index < 0 || index >= end) return UNMATCHED_ROUTE;
    template[index] = `[${name}]`;
    cursor = index + 1;
  }

  const kept = template.slice(0, end);
  if (catchAll) kept.push(`[...${catchAll[0]}]`);
  const result = `/${kept.join('/')}`;
  return result.length > MAX_TEMPLATE_LENGTH ? UNMATCHED_ROUTE : result;
}

function decodeSegment(segment: string): string {
  try {
    return decodeURIComponent(segment);
  } catch {
    return segment;
  }
}

/** The end of a response, as observeHttpResponse reports it. */
export interface ResponseEnd {
  durationSeconds: number;
  /** False when the body errored or the client went away before its end. */
  complete: boolean;
}

/**
 * Counts one API request and its duration once its response has ended: at once for a response without
 * a body, otherwise when the body has been read to its end, errored or been cancelled, or when `signal`
 * (the request's) aborts because the client went away. Then calls `onEnd`, if given. Returns the response
 * to send, whose body (if any) is a pass-through of the original. `startedAt` is a `performance.now()`
 * reading taken when the request arrived.
 */
export function observeHttpResponse(
  route: string,
  method: string,
  startedAt: number,
  response: Response,
  signal?: AbortSignal,
  onEnd?: (end: ResponseEnd) => void,
): Response {
  const labels = { route, method, status: String(response.status) };
  let recorded = false;
  const clientGone = () => record(false);
  const record = (complete: boolean) => {
    if (recorded) return;
    recorded = true;
    signal?.removeEventListener('abort', clientGone);
    const durationSeconds = (performance.now() - startedAt) / 1000;
    const { httpRequests, httpRequestDuration } = getMetrics();
    httpRequests.inc(labels);
    httpRequestDuration.observe(labels, durationSeconds);
    onEnd?.({ durationSeconds, complete: complete && !signal?.aborted });
  };

  // A client that left before the response never reads the body, and a stream behind it would run on.
  // So the body is cancelled here.
  if (signal?.aborted) {
    record(false);
    response.body?.cancel().catch(() => undefined);
    return response;
  }
  if (response.body === null) {
    record(true);
    return response;
  }
  signal?.addEventListener('abort', clientGone, { once: true });
  // A body with a Node.js stream behind it is recorded when that stream closes: at its end, on an error or
  // when the consumer destroys or cancels it.
  const nodeBody = nodeBodyOf(response);
  if (nodeBody) {
    nodeBody.once('close', () => record(nodeBody.readableEnded && !nodeBody.errored));
    return response;
  }
  const body = passThrough(response.body, { onChunk: () => undefined, onEnd: record });
  return new Response(body, { status: response.status, statusText: response.statusText, headers: response.headers });
}

export interface PassThroughHooks {
  /** Called with each chunk as the consumer reads it. */
  onChunk: (chunk: Uint8Array) => void;
  /** Called once when the source ends (`complete` true), errors or the consumer cancels. */
  onEnd: (complete: boolean) => void;
}

/**
 * Wraps a byte stream in one that reads a chunk from the source only when its consumer requests one
 * (high-water mark 0), so what the hooks see is what the consumer took, not what was buffered ahead.
 * Errors and cancellation pass through unchanged.
 */
export function passThrough(source: ReadableStream<Uint8Array>, hooks: PassThroughHooks): ReadableStream<Uint8Array> {
  const reader = source.getReader();
  let ended = false;
  const end = (complete: boolean) => {
    if (ended) return;
    ended = true;
    hooks.onEnd(complete);
  };

  return new ReadableStream<Uint8Array>(
    {
      async pull(controller) {
        let result: ReadableStreamReadResult<Uint8Array>;
        try {
          result = await reader.read();
        } catch (error) {
          end(false);
          controller.error(error);
          return;
        }
        if (result.done) {
          end(true);
          controller.close();
          return;
        }
        hooks.onChunk(result.value);
        controller.enqueue(result.value);
      },
      async cancel(reason) {
        end(false);
        await reader.cancel(reason);
      },
    },
    { highWaterMark: 0 },
  );
}

/** Wraps a download body so that each chunk passed on toward the client is added to download_bytes_sent_total. */
export function countDownloadBytes(source: Readable): Readable {
  const counter = getMetrics().downloadBytesSent;
  const count = new Transform({
    transform(chunk: Buffer, _encoding, callback) {
      counter.inc(chunk.byteLength);
      callback(null, chunk);
    },
  });
  return pipeThrough(source, count);
}
