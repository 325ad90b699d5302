import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { Transform, type TransformCallback } from 'node:stream';

/** One request that passed through the proxy, with the byte counts that actually reached the other side. */
export interface RecordedExchange {
  method: string;
  path: string;
  requestHeaders: http.IncomingHttpHeaders;
  /** Request body bytes forwarded to the upstream server. */
  requestBytes: number;
  status?: number;
  responseHeaders?: http.IncomingHttpHeaders;
  /** Response body bytes forwarded to the client. */
  responseBytes: number;
  /** True once both bodies ended normally; false when either side closed first. */
  completed: boolean;
}

export interface RecordingProxyOptions {
  /** Maximum body bytes per second in each direction of each request; unlimited when unset. */
  bytesPerSecond?: number;
  /** Flips the lowest bit of the response byte at `offset` for GET requests whose path matches. */
  corruptResponse?: { pathIncludes: string; offset: number };
  /** Loopback port to listen on, such as the port of a closed proxy to bring back; a free port when unset. */
  port?: number;
  /**
   * Reads the upstream response of the first `count` requests with this method and path, then closes the
   * client's connection instead of forwarding it: a response lost after the server acted on the request.
   */
  dropResponse?: { method: string; path: string; count: number };
}

export interface RecordingProxy {
  url: string;
  exchanges: RecordedExchange[];
  close(): Promise<void>;
}

/** Passes chunks through in slices of at most 64 KiB, delayed so the rate stays at or below `bytesPerSecond`. */
class Throttle extends Transform {
  readonly #bytesPerSecond: number;
  readonly #startedAt = Date.now();
  #passed = 0;
  readonly #onBytes: (count: number) => void;

  constructor(bytesPerSecond: number, onBytes: (count: number) => void) {
    super();
    this.#bytesPerSecond = bytesPerSecond;
    this.#onBytes = onBytes;
  }

  override async _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): Promise<void> {
    for (let offset = 0; offset < chunk.length; offset += 64 * 1024) {
      const slice = chunk.subarray(offset, offset + 64 * 1024);
      const due = this.#startedAt + ((this.#passed + slice.length) / this.#bytesPerSecond) * 1000;
      const wait = due - Date.now();
      if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
      if (this.destroyed) return;
      this.#passed += slice.length;
      this.#onBytes(slice.length);
      this.push(slice);
    }
    callback();
  }
}

/** Replaces each chunk with what `rewrite` returns for it. */
class Rewrite extends Transform {
  readonly #rewrite: (chunk: Buffer) => Buffer;

  constructor(rewrite: (chunk: Buffer) => Buffer) {
    super();
    this.#rewrite = rewrite;
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    callback(null, this.#rewrite(chunk));
  }
}

/** Returns a stage that reports the bytes passing through, throttled when `bytesPerSecond` is set. */
function meter(bytesPerSecond: number | undefined, onBytes: (count: number) => void): Transform {
  if (bytesPerSecond) return new Throttle(bytesPerSecond, onBytes);
  return new Rewrite((chunk) => {
    onBytes(chunk.length);
    return chunk;
  });
}

/**
 * Starts an HTTP proxy on a loopback port that forwards every request to `upstream` unchanged (the Host
 * header included, so tus Location headers point back at the proxy) and records what passed. Closing
 * either side aborts the other, so a killed client also interrupts the server's request.
 */
export async function startRecordingProxy(upstream: string, options: RecordingProxyOptions = {}): Promise<RecordingProxy> {
  const target = new URL(upstream);
  const exchanges: RecordedExchange[] = [];
  let droppedResponses = 0;

  const server = http.createServer((request, response) => {
    const exchange: RecordedExchange = { method: request.method!, path: request.url!, requestHeaders: request.headers, requestBytes: 0, responseBytes: 0, completed: false };
    exchanges.push(exchange);

    const upstreamRequest = http.request({ host: target.hostname, port: target.port, method: request.method, path: request.url, headers: request.headers });
    const countRequest = (bytes: number) => {
      exchange.requestBytes += bytes;
    };
    const countResponse = (bytes: number) => {
      exchange.responseBytes += bytes;
    };
    const requestStage = meter(options.bytesPerSecond, countRequest);
    request.pipe(requestStage).pipe(upstreamRequest);

    upstreamRequest.on('response', (upstreamResponse) => {
      exchange.status = upstreamResponse.statusCode;
      exchange.responseHeaders = upstreamResponse.headers;
      const drop = options.dropResponse;
      if (drop && request.method === drop.method && request.url === drop.path && droppedResponses < drop.count) {
        droppedResponses += 1;
        upstreamResponse.on('end', () => response.socket?.destroy());
        upstreamResponse.resume();
        return;
      }
      response.writeHead(upstreamResponse.statusCode!, upstreamResponse.headers);
      const corrupt = options.corruptResponse && request.method === 'GET' && request.url!.includes(options.corruptResponse.pathIncludes) ? options.corruptResponse : undefined;
      let seen = 0;
      const rewrite = (chunk: Buffer) => {
        if (corrupt && corrupt.offset >= seen && corrupt.offset < seen + chunk.length) {
          chunk = Buffer.from(chunk);
          chunk[corrupt.offset - seen] ^= 0x01;
        }
        seen += chunk.length;
        return chunk;
      };
      const responseStage = meter(options.bytesPerSecond, countResponse);
      upstreamResponse.pipe(new Rewrite(rewrite)).pipe(responseStage).pipe(response);
      response.on('finish', () => {
        exchange.completed = true;
      });
      upstreamResponse.on('error', () => response.destroy());
    });
    upstreamRequest.on('error', () => response.destroy());
    response.on('close', () => {
      if (!exchange.completed) upstreamRequest.destroy();
    });
    request.on('aborted', () => upstreamRequest.destroy());
  });

  await new Promise<void>((resolve) => server.listen(options.port ?? 0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    exchanges,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
