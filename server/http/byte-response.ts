/**
 * The Response for a GET or HEAD of stored bytes: conditional requests, single and multiple ranges
 * (RFC 9110 §13, §14, §15.3.7) and streaming that never keeps a whole file in memory.
 */
import { randomBytes } from 'node:crypto';
import { Transform, type Readable } from 'node:stream';
import { evaluatePreconditions, formatHttpDate, ifRangeAllowsPartial } from './conditional';
import { pipeThrough, responseWithNodeBody } from './node-bodies';
import { parseRangeHeader, type ByteRange } from './range';

export interface ByteResponseOptions {
  method: 'GET' | 'HEAD';
  request: Request;
  /** Size of the whole representation in bytes. */
  size: number;
  /** Strong ETag with its double quotes, as in `"blake3:<hex>"`. */
  etag: string;
  /** Media type of the bytes, in printable ASCII because it is repeated inside multipart bodies. */
  contentType: string;
  /** A ready Content-Disposition value, as built by `contentDisposition`. */
  contentDisposition: string;
  lastModified?: Date;
  /**
   * Opens the bytes of `range` (inclusive), or of the whole representation when `range` is undefined.
   * The stream must yield exactly that many bytes. Destroying it must release the source.
   */
  openRange: (range?: ByteRange) => Promise<Readable>;
}

/** A body part that is either ready bytes or a byte range still to be read from storage. */
type BodySegment = Uint8Array | RangeSegment;

interface RangeSegment {
  range: ByteRange | undefined;
  length: number;
  /** A stream opened before the response was returned, so that opening errors reach the caller. */
  openedStream?: ReadableStream<Uint8Array>;
}

const PRINTABLE_ASCII = /^[\x20-\x7e]+$/;
const textEncoder = new TextEncoder();

/**
 * Builds the Response for a GET or HEAD of a byte representation.
 *
 * In order:
 * 1. Conditional headers (see `evaluatePreconditions`): 304 with ETag and Last-Modified and no body,
 *    or PreconditionFailedError (412) thrown.
 * 2. HEAD: 200 with the headers a full GET would send and no body. RFC 9110 §14.2 defines Range for
 *    GET only, so HEAD ignores it. `openRange` is never called.
 * 3. GET with Range, unless If-Range is false (see `ifRangeAllowsPartial`) or the Range header is
 *    ignored (see `parseRangeHeader`): one range gives 206 with Content-Range, several give 206
 *    `multipart/byteranges` with each part read only when the body reaches it.
 *    RangeNotSatisfiableError (416) is thrown when no range is satisfiable.
 * 4. Otherwise 200 with the whole representation.
 *
 * Every 200 and 206 carries Content-Length, Accept-Ranges, ETag, Content-Disposition and
 * `X-Content-Type-Options: nosniff`. The first range is opened before this function returns, so a
 * storage error while opening it rejects the promise instead of cutting the response short. A stream
 * that yields more or fewer bytes than its range errors the body, so the client sees a broken download
 * rather than wrong bytes.
 */
export async function buildByteResponse(options: ByteResponseOptions): Promise<Response> {
  const { method, request, size, etag, contentType, lastModified } = options;
  if (!PRINTABLE_ASCII.test(contentType)) {
    throw new TypeError(`A content type must be printable ASCII, got ${JSON.stringify(contentType)}.`);
  }

  const validators = { etag, lastModified };
  if (evaluatePreconditions(request.headers, validators) === 'not_modified') {
    const headers = new Headers({ ETag: etag });
    if (lastModified) headers.set('Last-Modified', formatHttpDate(lastModified));
    return new Response(null, { status: 304, headers });
  }

  const headers = new Headers({
    'Accept-Ranges': 'bytes',
    ETag: etag,
    'Content-Disposition': options.contentDisposition,
    'X-Content-Type-Options': 'nosniff',
  });
  if (lastModified) headers.set('Last-Modified', formatHttpDate(lastModified));

  if (method === 'HEAD') {
    headers.set('Content-Type', contentType);
    headers.set('Content-Length', String(size));
    return new Response(null, { status: 200, headers });
  }

  const rangeHeader = request.headers.get('range');
  const rangesApply = rangeHeader !== null && ifRangeAllowsPartial(request.headers.get('if-range'), etag, lastModified);
  const selection = rangesApply ? parseRangeHeader(rangeHeader, size) : { kind: 'full' as const };

  if (selection.kind === 'full') {
    headers.set('Content-Type', contentType);
    headers.set('Content-Length', String(size));
    const body = await openExactly(undefined, size, options.openRange);
    return responseWithNodeBody(body, { status: 200, headers });
  }

  if (selection.ranges.length === 1) {
    const [range] = selection.ranges;
    headers.set('Content-Type', contentType);
    headers.set('Content-Length', String(range.end - range.start + 1));
    headers.set('Content-Range', `bytes ${range.start}-${range.end}/${size}`);
    const body = await openExactly(range, range.end - range.start + 1, options.openRange);
    return responseWithNodeBody(body, { status: 206, headers });
  }

  const boundary = randomBytes(16).toString('hex');
  const segments = buildMultipartSegments(selection.ranges, size, contentType, boundary);
  headers.set('Content-Type', `multipart/byteranges; boundary=${boundary}`);
  headers.set('Content-Length', String(segments.reduce((total, segment) => total + segment.length, 0)));
  const body = await openBody(segments, async (range) => readableToWebStream(await options.openRange(range)));
  return new Response(body, { status: 206, headers });
}

/**
 * Converts a Node.js Readable of bytes into a Web ReadableStream that reads the source only as fast as
 * the consumer pulls and destroys the source when the stream is cancelled. Next.js 16.5 pipes a route's
 * response body with an AbortSignal that fires when the client disconnects, which cancels the stream.
 * A source error errors the stream.
 */
export function readableToWebStream(source: Readable): ReadableStream<Uint8Array> {
  const iterator: AsyncIterator<unknown> = source[Symbol.asyncIterator]();

  return new ReadableStream<Uint8Array>(
    {
      async pull(controller) {
        const next = await iterator.next();
        if (next.done) {
          controller.close();
          return;
        }
        if (!(next.value instanceof Uint8Array)) {
          throw new TypeError('The source stream must yield bytes, not strings or objects.');
        }
        controller.enqueue(next.value);
      },
      cancel() {
        source.destroy();
      },
    },
    // The source keeps its own buffer, so this stream buffers nothing ahead of the consumer.
    { highWaterMark: 0 },
  );
}

/**
 * Lays out a multipart/byteranges body (RFC 9110 §14.6, RFC 2046 §5.1.1): before each part a boundary
 * line and the part's Content-Type and Content-Range, after the last part the closing boundary. Every
 * boundary line after the first starts with the CRLF that ends the previous part's bytes.
 */
function buildMultipartSegments(
  ranges: ByteRange[],
  size: number,
  contentType: string,
  boundary: string,
): BodySegment[] {
  const segments: BodySegment[] = [];

  ranges.forEach((range, index) => {
    const partHead =
      `${index === 0 ? '' : '\r\n'}--${boundary}\r\n` +
      `Content-Type: ${contentType}\r\n` +
      `Content-Range: bytes ${range.start}-${range.end}/${size}\r\n` +
      '\r\n';
    segments.push(textEncoder.encode(partHead));
    segments.push({ range, length: range.end - range.start + 1 });
  });
  segments.push(textEncoder.encode(`\r\n--${boundary}--\r\n`));

  return segments;
}

/** Opens one range (or the whole representation) and returns its bytes, which error unless there are exactly `length`. */
async function openExactly(range: ByteRange | undefined, length: number, openRange: ByteResponseOptions['openRange']): Promise<Readable> {
  const source = await openRange(range);
  let remaining = length;
  const check = new Transform({
    transform(chunk: Buffer, _encoding, callback) {
      if (chunk.byteLength > remaining) {
        callback(new Error(`Storage returned more than the ${length} bytes of ${describeRange(range)}.`));
        return;
      }
      remaining -= chunk.byteLength;
      callback(null, chunk);
    },
    flush(callback) {
      if (remaining !== 0) callback(new Error(`Storage returned ${length - remaining} of the ${length} bytes of ${describeRange(range)}.`));
      else callback();
    },
  });
  return pipeThrough(source, check);
}

type OpenWebRange = (range?: ByteRange) => Promise<ReadableStream<Uint8Array>>;

/** Opens the first range segment now and returns a stream of all segments in order. */
async function openBody(segments: BodySegment[], openRange: OpenWebRange): Promise<ReadableStream<Uint8Array>> {
  const first = segments.find((segment): segment is RangeSegment => !(segment instanceof Uint8Array));
  if (first) first.openedStream = await openRange(first.range);
  return concatenateSegments(segments, openRange);
}

/**
 * Streams the segments one after another, opening each range only when the consumer reaches it and
 * checking that it yields exactly its length. Cancelling the result cancels the range being read and
 * any range already opened but not yet read.
 */
function concatenateSegments(segments: BodySegment[], openRange: OpenWebRange): ReadableStream<Uint8Array> {
  let nextIndex = 0;
  let current: { segment: RangeSegment; reader: ReadableStreamDefaultReader<Uint8Array>; remaining: number } | null =
    null;
  let cancelled = false;

  return new ReadableStream<Uint8Array>(
    {
      async pull(controller) {
        // Loops until it enqueues a chunk or closes: a pull that returns with neither would leave the
        // consumer's read waiting forever.
        while (true) {
          if (current === null) {
            if (nextIndex === segments.length) {
              controller.close();
              return;
            }

            const segment = segments[nextIndex++];
            if (segment instanceof Uint8Array) {
              controller.enqueue(segment);
              return;
            }

            const stream = segment.openedStream ?? (await openRange(segment.range));
            segment.openedStream = undefined;
            if (cancelled) {
              await stream.cancel();
              return;
            }
            current = { segment, reader: stream.getReader(), remaining: segment.length };
          }

          const { done, value } = await current.reader.read();
          if (done) {
            if (current.remaining !== 0) {
              const received = current.segment.length - current.remaining;
              throw new Error(`Storage returned ${received} of the ${current.segment.length} bytes of ${describeRange(current.segment.range)}.`);
            }
            current = null;
            continue;
          }

          if (value.byteLength > current.remaining) {
            await current.reader.cancel();
            throw new Error(`Storage returned more than the ${current.segment.length} bytes of ${describeRange(current.segment.range)}.`);
          }
          current.remaining -= value.byteLength;
          if (value.byteLength > 0) {
            controller.enqueue(value);
            return;
          }
        }
      },

      async cancel(reason) {
        cancelled = true;
        const pending = segments.flatMap((segment) =>
          segment instanceof Uint8Array || segment.openedStream === undefined ? [] : [segment.openedStream],
        );
        await Promise.all([current?.reader.cancel(reason), ...pending.map((stream) => stream.cancel(reason))]);
      },
    },
    { highWaterMark: 0 },
  );
}

function describeRange(range: ByteRange | undefined): string {
  return range === undefined ? 'the whole file' : `bytes ${range.start}-${range.end}`;
}
