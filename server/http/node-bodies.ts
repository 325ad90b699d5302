import type { IncomingMessage, ServerResponse } from 'node:http';
import { Readable, type Duplex } from 'node:stream';
import type { ReadableStream as NodeReadableStream } from 'node:stream/web';

/**
 * The Node.js streams behind the bodies of Requests and Responses that this process builds. The direct
 * routes build Requests from node:http requests and pipe Responses to node:http responses, so both ends
 * can pass chunks between Node.js streams instead of going through web streams.
 */
const nodeBodies = new WeakMap<Request | Response, Readable>();

/** Records the Node.js stream that a Request's body comes from. */
export function attachNodeBody(request: Request, body: Readable): void {
  nodeBodies.set(request, body);
}

/**
 * Returns the request's body as a Node.js stream: the recorded stream when there is one, else a
 * conversion of `request.body`, and an empty stream for a request without a body.
 */
export function requestBodyStream(request: Request): Readable {
  const recorded = nodeBodies.get(request);
  if (recorded) return recorded;
  return request.body ? Readable.fromWeb(request.body as NodeReadableStream<Uint8Array>) : Readable.from([]);
}

/** Set by scripts/server.mjs on a request sent with `Expect: 100-continue` that has had no 100 response yet. */
const CONTINUE_PENDING = Symbol.for('artifact-store.continuePending');

/**
 * Sends the interim 100 (Continue) response of a request sent with `Expect: 100-continue` when its body is
 * first read, so a request rejected before that (authentication, limits, a taken path) never makes the
 * client send its body. Does nothing for other requests.
 */
export function continueOnFirstRead(request: IncomingMessage, response: ServerResponse): void {
  const pending = request as IncomingMessage & { [CONTINUE_PENDING]?: boolean };
  if (!pending[CONTINUE_PENDING]) return;
  const read = request._read;
  request._read = function (size: number) {
    request._read = read;
    if (pending[CONTINUE_PENDING] && !response.headersSent) response.writeContinue();
    pending[CONTINUE_PENDING] = false;
    return read.call(this, size);
  };
}

/**
 * Returns a web ReadableStream of the chunks of a Node.js stream, read as the consumer pulls. Unlike
 * `Readable.toWeb` in Node.js 20, which copies every Buffer, it hands the chunks on as they are, so
 * consumers must not transfer or modify them. Cancelling the web stream destroys the Node.js stream.
 */
export function webStreamOf(body: Readable): ReadableStream<Uint8Array> {
  let chunks: AsyncIterator<Buffer> | undefined;
  return new ReadableStream<Uint8Array>(
    {
      async pull(controller) {
        try {
          // The iterator is created on the first read, because creating it starts reading the stream.
          chunks ??= body[Symbol.asyncIterator]() as AsyncIterator<Buffer>;
          const { done, value } = await chunks.next();
          if (done) controller.close();
          else controller.enqueue(value);
        } catch (error) {
          controller.error(error);
        }
      },
      cancel(reason) {
        body.destroy(reason instanceof Error ? reason : undefined);
      },
    },
    { highWaterMark: 0 },
  );
}

/**
 * Returns a Response whose body is `body`: as a web stream for any consumer, and as the Node.js stream
 * itself for `nodeBodyOf`. Only one of the two may be read.
 */
export function responseWithNodeBody(body: Readable, init: ResponseInit): Response {
  const response = new Response(webStreamOf(body), init);
  nodeBodies.set(response, body);
  return response;
}

/** Returns the Node.js stream recorded for a Response's body by `responseWithNodeBody`, or undefined. */
export function nodeBodyOf(response: Response): Readable | undefined {
  return nodeBodies.get(response);
}

/**
 * Pipes `source` into `transform` and returns `transform`: an error of the source destroys the transform
 * with it, and a transform that closes, at its end or destroyed by its consumer, destroys the source.
 * Unlike `stream.pipeline`, this creates no AbortController. In Node.js 20 the AbortController that each
 * pipeline aborts at its end took about 40 µs of the 1.6 ms of CPU of a 4 KiB range download, which had three
 * pipelines (CPU profile on a 2-core AMD EPYC VM).
 */
export function pipeThrough<T extends Duplex>(source: Readable, transform: T): T {
  source.once('error', (error) => transform.destroy(error));
  transform.once('close', () => source.destroy());
  return source.pipe(transform);
}
