import { Readable } from 'node:stream';
import pino from 'pino';
import { describe, expect, it, vi } from 'vitest';
import { z } from 'zod';
import { RangeNotSatisfiableError, ValidationError, type ValidationIssue } from '../../server/errors';
import { parseQuery, queryInteger } from '../../server/http/body';
import { buildByteResponse, readableToWebStream, type ByteResponseOptions } from '../../server/http/byte-response';
import {
  etagMatches,
  evaluatePreconditions,
  ifRangeAllowsPartial,
  parseHttpDate,
  PreconditionFailedError,
} from '../../server/http/conditional';
import { contentDisposition } from '../../server/http/content-disposition';
import { errorToResponse } from '../../server/http/problem';
import { MAX_RANGES, parseRangeHeader, type ByteRange } from '../../server/http/range';

const ETAG = '"blake3:0123abcd"';
const LAST_MODIFIED = new Date('2024-05-06T07:08:09.000Z');
const LAST_MODIFIED_HTTP = 'Mon, 06 May 2024 07:08:09 GMT';
const CONTENT = new TextEncoder().encode('abcdefghijklmnopqrstuvwxyz');
const DISPOSITION = 'attachment; filename="letters.txt"; filename*=UTF-8\'\'letters.txt';
const silentLog = pino({ enabled: false });

interface Source {
  options: ByteResponseOptions;
  /** Ranges passed to openRange, in call order; `full` for a call without a range. */
  opened: (ByteRange | 'full')[];
  /** How many opened streams were destroyed before their end. */
  cancelled: () => number;
}

/**
 * Builds download options over bytes in memory. Each opened stream yields its slice in chunks of
 * three bytes, so parts span several chunks. `shortBy` drops that many bytes from every slice.
 */
function memorySource(
  bytes: Uint8Array,
  init: { method?: 'GET' | 'HEAD'; headers?: Record<string, string>; shortBy?: number; lastModified?: Date } = {},
): Source {
  const opened: (ByteRange | 'full')[] = [];
  let cancelCount = 0;

  const openRange = async (range?: ByteRange): Promise<Readable> => {
    opened.push(range ?? 'full');
    const start = range?.start ?? 0;
    const end = (range?.end ?? bytes.length - 1) + 1 - (init.shortBy ?? 0);
    let position = start;
    return new Readable({
      read() {
        if (position >= end) {
          this.push(null);
          return;
        }
        const chunkEnd = Math.min(position + 3, end);
        this.push(Buffer.from(bytes.slice(position, chunkEnd)));
        position = chunkEnd;
      },
      destroy(error, callback) {
        // A stream destroyed before its end was cancelled by its consumer.
        if (!this.readableEnded) cancelCount++;
        callback(error);
      },
    });
  };

  const method = init.method ?? 'GET';
  const request = new Request('http://127.0.0.1/api/v1/files/1/download', { method, headers: init.headers });
  return {
    options: {
      method,
      request,
      size: bytes.length,
      etag: ETAG,
      contentType: 'text/plain',
      contentDisposition: DISPOSITION,
      lastModified: 'lastModified' in init ? init.lastModified : LAST_MODIFIED,
      openRange,
    },
    opened,
    cancelled: () => cancelCount,
  };
}

async function readText(response: Response): Promise<string> {
  return new TextDecoder().decode(await response.arrayBuffer());
}

function boundaryOf(response: Response): string {
  const match = /^multipart\/byteranges; boundary=([0-9a-f]+)$/.exec(response.headers.get('content-type') ?? '');
  if (match === null) throw new Error(`not a multipart/byteranges content type: ${response.headers.get('content-type')}`);
  return match[1];
}

async function captureError(promise: Promise<unknown>): Promise<unknown> {
  try {
    await promise;
  } catch (error) {
    return error;
  }
  throw new Error('expected the promise to reject');
}

describe('parseRangeHeader', () => {
  const satisfiable: [string, number, ByteRange[]][] = [
    ['bytes=0-4', 10, [{ start: 0, end: 4 }]],
    ['bytes=-3', 10, [{ start: 7, end: 9 }]],
    ['bytes=-50', 10, [{ start: 0, end: 9 }]],
    ['bytes=-10', 10, [{ start: 0, end: 9 }]],
    ['bytes=-50,0-1', 10, [{ start: 0, end: 9 }]],
    ['bytes=5-', 10, [{ start: 5, end: 9 }]],
    ['bytes=5-100', 10, [{ start: 5, end: 9 }]],
    ['bytes=9-9', 10, [{ start: 9, end: 9 }]],
    ['BYTES=0-0', 10, [{ start: 0, end: 0 }]],
    ['bytes=0-1, 5-6', 10, [{ start: 0, end: 1 }, { start: 5, end: 6 }]],
    ['bytes=8-9,0-1', 10, [{ start: 8, end: 9 }, { start: 0, end: 1 }]],
    ['bytes=0-4,2-6,8-9', 10, [{ start: 0, end: 6 }, { start: 8, end: 9 }]],
    ['bytes=0-1,2-3', 10, [{ start: 0, end: 3 }]],
    ['bytes=20-30,0-0', 10, [{ start: 0, end: 0 }]],
  ];

  it.each(satisfiable)('%s of %i bytes', (header, size, ranges) => {
    expect(parseRangeHeader(header, size)).toEqual({ kind: 'ranges', ranges });
  });

  const ignored: [string, string | null, number][] = [
    ['no header', null, 10],
    ['empty header', '', 10],
    ['no equals sign', 'bytes 0-1', 10],
    ['another unit', 'items=0-1', 10],
    ['letters', 'bytes=a-b', 10],
    ['last below first', 'bytes=5-2', 10],
    ['one invalid spec of two', 'bytes=0-1,x', 10],
    ['empty range set', 'bytes=', 10],
    ['negative first position', 'bytes=-1-2', 10],
    ['zero-length file, int range', 'bytes=0-0', 0],
    ['zero-length file, suffix range', 'bytes=-1', 0],
  ];

  it.each(ignored)('%s gives full', (_name, header, size) => {
    expect(parseRangeHeader(header, size)).toEqual({ kind: 'full' });
  });

  it.each(['bytes=10-', 'bytes=10-20', 'bytes=-0', 'bytes=10-11,12-'])('%s of 10 bytes is unsatisfiable', (header) => {
    expect(() => parseRangeHeader(header, 10)).toThrow(RangeNotSatisfiableError);
  });

  it('unsatisfiable error carries 416 and the size', () => {
    try {
      parseRangeHeader('bytes=10-', 10);
      expect.unreachable('parseRangeHeader should have thrown');
    } catch (error) {
      expect(error).toBeInstanceOf(RangeNotSatisfiableError);
      expect((error as RangeNotSatisfiableError).status).toBe(416);
      expect((error as RangeNotSatisfiableError).headers).toEqual({ 'Content-Range': 'bytes */10' });
    }
  });

  it('more than MAX_RANGES ranges gives full', () => {
    const specs = (count: number) => Array.from({ length: count }, (_, index) => `${index * 2}-${index * 2}`).join(',');
    const allowed = parseRangeHeader(`bytes=${specs(MAX_RANGES)}`, 1000);
    expect(allowed.kind).toBe('ranges');
    expect((allowed as { ranges: ByteRange[] }).ranges).toHaveLength(MAX_RANGES);
    expect(parseRangeHeader(`bytes=${specs(MAX_RANGES + 1)}`, 1000)).toEqual({ kind: 'full' });
  });

  it('merged ranges count once toward MAX_RANGES', () => {
    const overlapping = Array.from({ length: 500 }, () => '0-9').join(',');
    expect(parseRangeHeader(`bytes=${overlapping}`, 1000)).toEqual({ kind: 'ranges', ranges: [{ start: 0, end: 9 }] });
  });
});

describe('etagMatches', () => {
  const cases: [string, string | null, boolean][] = [
    ['same tag', '"blake3:0123abcd"', true],
    ['weak form of the tag', 'W/"blake3:0123abcd"', true],
    ['tag inside a list', '"other", W/"blake3:0123abcd" ,"third"', true],
    ['star', '*', true],
    ['other tag', '"blake3:ffff"', false],
    ['unquoted tag', 'blake3:0123abcd', false],
    ['list without comma', '"other" "blake3:0123abcd"', false],
    ['no header', null, false],
  ];

  it.each(cases)('%s', (_name, header, expected) => {
    expect(etagMatches(header, ETAG)).toBe(expected);
  });

  it('rejects a weak ETag argument', () => {
    expect(() => etagMatches('*', 'W/"x"')).toThrow(TypeError);
  });
});

describe('ifRangeAllowsPartial', () => {
  const cases: [string, string | null, Date | undefined, boolean][] = [
    ['no If-Range', null, undefined, true],
    ['same strong tag', ETAG, undefined, true],
    ['weak form of the tag', `W/${ETAG}`, undefined, false],
    ['other tag', '"blake3:ffff"', undefined, false],
    ['Last-Modified date', LAST_MODIFIED_HTTP, LAST_MODIFIED, true],
    ['earlier date', 'Mon, 06 May 2024 07:08:08 GMT', LAST_MODIFIED, false],
    ['date without Last-Modified', LAST_MODIFIED_HTTP, undefined, false],
    ['garbage', 'yesterday', LAST_MODIFIED, false],
    ['two tags', `${ETAG}, ${ETAG}`, undefined, false],
  ];

  it.each(cases)('%s', (_name, header, lastModified, expected) => {
    expect(ifRangeAllowsPartial(header, ETAG, lastModified)).toBe(expected);
  });

  it('compares dates to the second', () => {
    expect(ifRangeAllowsPartial(LAST_MODIFIED_HTTP, ETAG, new Date('2024-05-06T07:08:09.999Z'))).toBe(true);
  });
});

describe('parseHttpDate', () => {
  const expected = Date.UTC(1994, 10, 6, 8, 49, 37);

  it.each([
    ['IMF-fixdate', 'Sun, 06 Nov 1994 08:49:37 GMT'],
    ['RFC 850', 'Sunday, 06-Nov-94 08:49:37 GMT'],
    ['asctime', 'Sun Nov  6 08:49:37 1994'],
  ])('%s', (_name, text) => {
    expect(parseHttpDate(text)?.getTime()).toBe(expected);
  });

  it.each([
    ['impossible day', 'Sat, 31 Feb 2024 00:00:00 GMT'],
    ['hour 24', 'Sun, 06 Nov 1994 24:00:00 GMT'],
    ['another zone', 'Sun, 06 Nov 1994 08:49:37 PST'],
    ['ISO 8601', '1994-11-06T08:49:37Z'],
  ])('%s is rejected', (_name, text) => {
    expect(parseHttpDate(text)).toBeNull();
  });
});

describe('evaluatePreconditions', () => {
  const validators = { etag: ETAG, lastModified: LAST_MODIFIED };
  const evaluate = (headers: Record<string, string>) => evaluatePreconditions(new Headers(headers), validators);

  it('If-Match with the tag proceeds', () => {
    expect(evaluate({ 'If-Match': ETAG })).toBe('proceed');
    expect(evaluate({ 'If-Match': '*' })).toBe('proceed');
  });

  it('If-Match with another or weak tag fails', () => {
    expect(() => evaluate({ 'If-Match': '"other"' })).toThrow(PreconditionFailedError);
    expect(() => evaluate({ 'If-Match': `W/${ETAG}` })).toThrow(PreconditionFailedError);
  });

  it('If-Unmodified-Since before Last-Modified fails', () => {
    expect(() => evaluate({ 'If-Unmodified-Since': 'Mon, 06 May 2024 07:08:08 GMT' })).toThrow(PreconditionFailedError);
    expect(evaluate({ 'If-Unmodified-Since': LAST_MODIFIED_HTTP })).toBe('proceed');
  });

  it('If-Modified-Since at Last-Modified is not modified', () => {
    expect(evaluate({ 'If-Modified-Since': LAST_MODIFIED_HTTP })).toBe('not_modified');
    expect(evaluate({ 'If-Modified-Since': 'Mon, 06 May 2024 07:08:08 GMT' })).toBe('proceed');
  });

  it('If-None-Match takes precedence over If-Modified-Since', () => {
    expect(evaluate({ 'If-None-Match': '"other"', 'If-Modified-Since': LAST_MODIFIED_HTTP })).toBe('proceed');
    expect(evaluate({ 'If-None-Match': ETAG })).toBe('not_modified');
  });

  it('412 error maps to status 412', () => {
    const error = new PreconditionFailedError('If-Match');
    expect(error.status).toBe(412);
  });
});

describe('contentDisposition', () => {
  it('Chinese name gets fallback and UTF-8 form', () => {
    expect(contentDisposition('报告.txt')).toBe(`attachment; filename="__.txt"; filename*=UTF-8''%E6%8A%A5%E5%91%8A.txt`);
  });

  it('quote and backslash become underscores', () => {
    expect(contentDisposition('a"b\\c.txt')).toBe(`attachment; filename="a_b_c.txt"; filename*=UTF-8''a%22b%5Cc.txt`);
  });

  it('CR and LF never reach the header', () => {
    const value = contentDisposition('report.txt\r\nSet-Cookie: a=b');
    expect(value).toBe(`attachment; filename="report.txt__Set-Cookie: a=b"; filename*=UTF-8''report.txt__Set-Cookie%3A%20a%3Db`);
    expect(value).not.toMatch(/[\r\n]/);
    expect(() => new Headers({ 'Content-Disposition': value })).not.toThrow();
  });

  it("escapes ' ( ) * in filename*", () => {
    expect(contentDisposition("it's (1)*.txt")).toBe(`attachment; filename="it's (1)*.txt"; filename*=UTF-8''it%27s%20%281%29%2A.txt`);
  });

  it('emoji and lone surrogate', () => {
    expect(contentDisposition('😀\uD800.bin', 'inline')).toBe(`inline; filename="__.bin"; filename*=UTF-8''%F0%9F%98%80%EF%BF%BD.bin`);
  });

  it('empty name gives the bare type', () => {
    expect(contentDisposition('')).toBe('attachment');
  });
});

describe('buildByteResponse', () => {
  it('full GET sends 200 with every header', async () => {
    const source = memorySource(CONTENT);
    const response = await buildByteResponse(source.options);

    expect(response.status).toBe(200);
    expect(Object.fromEntries(response.headers)).toEqual({
      'accept-ranges': 'bytes',
      'content-disposition': DISPOSITION,
      'content-length': '26',
      'content-type': 'text/plain',
      etag: ETAG,
      'last-modified': LAST_MODIFIED_HTTP,
      'x-content-type-options': 'nosniff',
    });
    expect(await readText(response)).toBe('abcdefghijklmnopqrstuvwxyz');
    expect(source.opened).toEqual(['full']);
  });

  it('single range sends 206 with Content-Range', async () => {
    const source = memorySource(CONTENT, { headers: { Range: 'bytes=0-4' } });
    const response = await buildByteResponse(source.options);

    expect(response.status).toBe(206);
    expect(response.headers.get('content-range')).toBe('bytes 0-4/26');
    expect(response.headers.get('content-length')).toBe('5');
    expect(response.headers.get('content-type')).toBe('text/plain');
    expect(response.headers.get('accept-ranges')).toBe('bytes');
    expect(response.headers.get('etag')).toBe(ETAG);
    expect(await readText(response)).toBe('abcde');
    expect(source.opened).toEqual([{ start: 0, end: 4 }]);
  });

  it('suffix range sends the last bytes', async () => {
    const response = await buildByteResponse(memorySource(CONTENT, { headers: { Range: 'bytes=-3' } }).options);
    expect(response.status).toBe(206);
    expect(response.headers.get('content-range')).toBe('bytes 23-25/26');
    expect(await readText(response)).toBe('xyz');
  });

  it('open-ended range sends to the end', async () => {
    const response = await buildByteResponse(memorySource(CONTENT, { headers: { Range: 'bytes=20-' } }).options);
    expect(response.status).toBe(206);
    expect(response.headers.get('content-range')).toBe('bytes 20-25/26');
    expect(response.headers.get('content-length')).toBe('6');
    expect(await readText(response)).toBe('uvwxyz');
  });

  it('multiple ranges send multipart/byteranges', async () => {
    const source = memorySource(CONTENT, { headers: { Range: 'bytes=0-2,10-14,-2' } });
    const response = await buildByteResponse(source.options);
    const boundary = boundaryOf(response);
    const body = await readText(response);

    const expected =
      `--${boundary}\r\n` +
      'Content-Type: text/plain\r\n' +
      'Content-Range: bytes 0-2/26\r\n' +
      '\r\n' +
      'abc' +
      `\r\n--${boundary}\r\n` +
      'Content-Type: text/plain\r\n' +
      'Content-Range: bytes 10-14/26\r\n' +
      '\r\n' +
      'klmno' +
      `\r\n--${boundary}\r\n` +
      'Content-Type: text/plain\r\n' +
      'Content-Range: bytes 24-25/26\r\n' +
      '\r\n' +
      'yz' +
      `\r\n--${boundary}--\r\n`;
    expect(response.status).toBe(206);
    expect(boundary).toHaveLength(32);
    expect(body).toBe(expected);
    expect(response.headers.get('content-length')).toBe(String(Buffer.byteLength(expected)));
    expect(response.headers.get('content-range')).toBeNull();
    expect(source.opened).toEqual([
      { start: 0, end: 2 },
      { start: 10, end: 14 },
      { start: 24, end: 25 },
    ]);
  });

  it('multipart opens each part only when reached', async () => {
    const source = memorySource(CONTENT, { headers: { Range: 'bytes=0-2,10-14,20-21' } });
    const response = await buildByteResponse(source.options);
    expect(source.opened).toHaveLength(1);

    const reader = response.body!.getReader();
    let received = '';
    while (!received.includes('klm')) {
      const { value, done } = await reader.read();
      if (done) throw new Error('body ended before the second part');
      received += new TextDecoder().decode(value);
    }
    expect(source.opened).toHaveLength(2);

    await reader.cancel();
    expect(source.cancelled()).toBe(1);
    expect(source.opened).toHaveLength(2);
  });

  it('overlapping ranges are combined into one', async () => {
    const response = await buildByteResponse(memorySource(CONTENT, { headers: { Range: 'bytes=0-4,3-7' } }).options);
    expect(response.status).toBe(206);
    expect(response.headers.get('content-range')).toBe('bytes 0-7/26');
    expect(await readText(response)).toBe('abcdefgh');
  });

  it('unsatisfiable range maps to 416', async () => {
    const source = memorySource(CONTENT, { headers: { Range: 'bytes=26-' } });
    const error = await captureError(buildByteResponse(source.options));

    expect(error).toBeInstanceOf(RangeNotSatisfiableError);
    const response = errorToResponse(error, silentLog);
    expect(response.status).toBe(416);
    expect(response.headers.get('content-range')).toBe('bytes */26');
    expect(response.headers.get('content-type')).toBe('application/problem+json');
    expect(source.opened).toEqual([]);
  });

  it('malformed range sends 200 full', async () => {
    const response = await buildByteResponse(memorySource(CONTENT, { headers: { Range: 'bytes=z-1' } }).options);
    expect(response.status).toBe(200);
    expect(response.headers.get('content-range')).toBeNull();
    expect(await readText(response)).toBe('abcdefghijklmnopqrstuvwxyz');
  });

  it('If-Range with the ETag sends 206', async () => {
    const headers = { Range: 'bytes=1-2', 'If-Range': ETAG };
    const response = await buildByteResponse(memorySource(CONTENT, { headers }).options);
    expect(response.status).toBe(206);
    expect(await readText(response)).toBe('bc');
  });

  it('If-Range with another ETag sends 200', async () => {
    const headers = { Range: 'bytes=1-2', 'If-Range': '"blake3:ffff"' };
    const response = await buildByteResponse(memorySource(CONTENT, { headers }).options);
    expect(response.status).toBe(200);
    expect(await readText(response)).toBe('abcdefghijklmnopqrstuvwxyz');
  });

  it('failed If-Range skips the 416 check', async () => {
    const headers = { Range: 'bytes=100-', 'If-Range': '"blake3:ffff"' };
    const response = await buildByteResponse(memorySource(CONTENT, { headers }).options);
    expect(response.status).toBe(200);
  });

  it('If-Range with Last-Modified sends 206', async () => {
    const headers = { Range: 'bytes=1-2', 'If-Range': LAST_MODIFIED_HTTP };
    const response = await buildByteResponse(memorySource(CONTENT, { headers }).options);
    expect(response.status).toBe(206);
  });

  it('If-None-Match match sends 304 without opening', async () => {
    const source = memorySource(CONTENT, { headers: { 'If-None-Match': `"x", W/${ETAG}`, Range: 'bytes=0-1' } });
    const response = await buildByteResponse(source.options);

    expect(response.status).toBe(304);
    expect(response.body).toBeNull();
    expect(response.headers.get('etag')).toBe(ETAG);
    expect(response.headers.get('last-modified')).toBe(LAST_MODIFIED_HTTP);
    expect(response.headers.get('content-length')).toBeNull();
    expect(source.opened).toEqual([]);
  });

  it('If-None-Match mismatch sends 200', async () => {
    const response = await buildByteResponse(memorySource(CONTENT, { headers: { 'If-None-Match': '"x"' } }).options);
    expect(response.status).toBe(200);
  });

  it('If-Match mismatch throws 412', async () => {
    const source = memorySource(CONTENT, { headers: { 'If-Match': '"x"' } });
    const error = await captureError(buildByteResponse(source.options));
    expect(error).toBeInstanceOf(PreconditionFailedError);
    expect(errorToResponse(error, silentLog).status).toBe(412);
  });

  it('HEAD sends headers without body or opening', async () => {
    const source = memorySource(CONTENT, { method: 'HEAD', headers: { Range: 'bytes=0-4' } });
    const response = await buildByteResponse(source.options);

    expect(response.status).toBe(200);
    expect(response.body).toBeNull();
    expect(response.headers.get('content-length')).toBe('26');
    expect(response.headers.get('content-type')).toBe('text/plain');
    expect(response.headers.get('accept-ranges')).toBe('bytes');
    expect(response.headers.get('etag')).toBe(ETAG);
    expect(response.headers.get('content-disposition')).toBe(DISPOSITION);
    expect(response.headers.get('x-content-type-options')).toBe('nosniff');
    expect(response.headers.get('content-range')).toBeNull();
    expect(source.opened).toEqual([]);
  });

  it('HEAD If-None-Match sends 304', async () => {
    const source = memorySource(CONTENT, { method: 'HEAD', headers: { 'If-None-Match': ETAG } });
    expect((await buildByteResponse(source.options)).status).toBe(304);
  });

  it('zero-length file sends 200 empty', async () => {
    for (const range of [undefined, 'bytes=0-0', 'bytes=-1', 'bytes=0-']) {
      const headers: Record<string, string> = range === undefined ? {} : { Range: range };
      const response = await buildByteResponse(memorySource(new Uint8Array(0), { headers }).options);
      expect(response.status).toBe(200);
      expect(response.headers.get('content-length')).toBe('0');
      expect(response.headers.get('content-range')).toBeNull();
      expect(await readText(response)).toBe('');
    }
  });

  it('no Last-Modified header without a date', async () => {
    const response = await buildByteResponse(memorySource(CONTENT, { lastModified: undefined }).options);
    expect(response.headers.get('last-modified')).toBeNull();
  });

  it('short storage read errors the body', async () => {
    const response = await buildByteResponse(memorySource(CONTENT, { shortBy: 1 }).options);
    await expect(response.arrayBuffer()).rejects.toThrow(/Storage returned 25 of the 26 bytes of the whole file/);
  });

  it('short part errors the multipart body', async () => {
    const source = memorySource(CONTENT, { headers: { Range: 'bytes=0-2,10-14' }, shortBy: 1 });
    const response = await buildByteResponse(source.options);
    await expect(response.arrayBuffer()).rejects.toThrow(/Storage returned 2 of the 3 bytes of bytes 0-2/);
  });

  it('cancelled body cancels the source', async () => {
    // Larger than what the streams between source and body read ahead, so the source cannot end first.
    const source = memorySource(new Uint8Array(256 * 1024));
    const response = await buildByteResponse(source.options);
    const reader = response.body!.getReader();
    await reader.read();
    await reader.cancel();
    // The source is destroyed by the pipeline behind the body, a few ticks after the cancel.
    await vi.waitFor(() => expect(source.cancelled()).toBe(1));
  });

  it('cancel before reading cancels the opened stream', async () => {
    const source = memorySource(new Uint8Array(256 * 1024));
    const response = await buildByteResponse(source.options);
    await response.body!.cancel();
    await vi.waitFor(() => expect(source.cancelled()).toBe(1));
  });

  it('rejects a content type with CR LF', async () => {
    const source = memorySource(CONTENT);
    const options = { ...source.options, contentType: 'text/plain\r\nX-Evil: 1' };
    await expect(buildByteResponse(options)).rejects.toThrow(TypeError);
  });
});

describe('readableToWebStream', () => {
  it('passes the bytes through', async () => {
    const source = Readable.from([Buffer.from('abc'), Buffer.from('def')], { objectMode: false });
    const text = await new Response(readableToWebStream(source)).text();
    expect(text).toBe('abcdef');
  });

  it('cancel destroys the source', async () => {
    let pushed = 0;
    const source = new Readable({
      read() {
        pushed++;
        this.push(Buffer.alloc(1024, 1));
      },
    });
    const reader = readableToWebStream(source).getReader();
    const first = await reader.read();
    expect(first.value?.byteLength).toBe(1024);

    await reader.cancel();
    expect(source.destroyed).toBe(true);
    expect(pushed).toBeLessThan(100);
  });

  it('source error errors the stream', async () => {
    const source = new Readable({
      read() {
        this.destroy(new Error('disk read failed'));
      },
    });
    await expect(new Response(readableToWebStream(source)).arrayBuffer()).rejects.toThrow('disk read failed');
  });

  it('rejects string chunks', async () => {
    const source = Readable.from(['text']);
    await expect(new Response(readableToWebStream(source)).arrayBuffer()).rejects.toThrow(/must yield bytes/);
  });
});

describe('parseQuery with queryInteger', () => {
  const Query = z.object({ limit: queryInteger(1, 500, 100), since: queryInteger(0, Number.MAX_SAFE_INTEGER) }).strict();
  const parse = (query: string) => parseQuery(new Request(`http://localhost/x?${query}`), Query);
  /** Returns the issues of the ValidationError that parsing the query throws. */
  const issuesOf = (query: string): ValidationIssue[] => {
    try {
      parse(query);
    } catch (error) {
      expect(error).toBeInstanceOf(ValidationError);
      return (error as ValidationError).fields.errors as ValidationIssue[];
    }
    throw new Error(`the query ${query} was accepted`);
  };

  it('reads digits and applies defaults', () => {
    expect(parse('')).toEqual({ limit: 100 });
    expect(parse('limit=7&since=0')).toEqual({ limit: 7, since: 0 });
    expect(parse('limit=007')).toEqual({ limit: 7 });
    expect(parse(`since=${Number.MAX_SAFE_INTEGER}`)).toEqual({ limit: 100, since: Number.MAX_SAFE_INTEGER });
  });

  it.each(['1e2', '0x10', '5.0', '%205', '5%20', '+5', '-1', '', 'abc', '1_000'])('rejects limit=%s', (value) => {
    expect(issuesOf(`limit=${value}`)).toEqual([{ field: 'limit', rule: 'integer', message: 'must be a whole number written in decimal digits, from 1 to 500' }]);
  });

  it('rejects an out-of-bounds value', () => {
    expect(issuesOf('limit=501').map((issue) => issue.rule)).toEqual(['too_big']);
    expect(issuesOf('limit=0').map((issue) => issue.rule)).toEqual(['too_small']);
    expect(issuesOf(`since=${Number.MAX_SAFE_INTEGER + 1}`).map((issue) => issue.field + ' ' + issue.rule)).toEqual(['since too_big']);
  });
});
