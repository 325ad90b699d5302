import { Readable } from 'node:stream';
import busboy from 'busboy';
import { UnsupportedMediaTypeError, ValidationError } from '../errors';

export interface MultipartFile {
  fields: Record<string, string>;
  stream: Readable;
  /** The file name from the part's Content-Disposition, if any. */
  fileName: string | undefined;
  /** The part's own Content-Type. */
  mimeType: string | undefined;
  /**
   * Resolves once the whole body has been parsed and accepted, and rejects with the request's error when
   * anything after the file part fails it (a second file part, a body cut before its closing boundary).
   * A consumer records nothing before it resolves.
   */
  complete: Promise<void>;
}

const MAX_FIELD_BYTES = 8 * 1024;

/**
 * Parses a multipart/form-data body with one file part named `file`, streaming the file to `consume`
 * without buffering it. Text fields are collected as they arrive, so fields meant for the file
 * (relative_path, media_type) must come before the file part. Any second file, an unknown part name or
 * a missing file part is a 400.
 */
export async function consumeSingleFile<T>(request: Request, consume: (file: MultipartFile) => Promise<T>): Promise<T> {
  const contentType = request.headers.get('content-type') ?? '';
  if (!/^multipart\/form-data\s*;/i.test(contentType)) {
    throw new UnsupportedMediaTypeError('Send the file as multipart/form-data with a part named "file", or PUT the raw bytes to /packages/{id}/files/{relative_path}.');
  }
  if (!request.body) throw badMultipart('the request has no body');

  let parser: busboy.Busboy;
  try {
    parser = busboy({
      headers: { 'content-type': contentType },
      limits: { files: 1, fields: 16, parts: 17, fieldSize: MAX_FIELD_BYTES },
      defParamCharset: 'utf8',
    });
  } catch (error) {
    throw badMultipart((error as Error).message);
  }

  const fields: Record<string, string> = {};
  const source = Readable.fromWeb(request.body as import('node:stream/web').ReadableStream<Uint8Array>);

  let markComplete!: () => void;
  let markFailed!: (error: unknown) => void;
  const complete = new Promise<void>((resolve, reject) => {
    markComplete = resolve;
    markFailed = reject;
  });
  // A consumer that failed before it waited for `complete` must not leave its rejection unhandled.
  complete.catch(() => undefined);

  return new Promise<T>((resolve, reject) => {
    let settled = false;
    let consuming: Promise<T> | undefined;
    const fail = (error: unknown) => {
      markFailed(error);
      if (settled) return;
      settled = true;
      source.unpipe(parser);
      source.destroy();
      // busboy destroys the open file part's stream with the parser, so a consumer still reading it (a
      // client that left mid-file) fails and removes its temporary file instead of waiting for more bytes.
      parser.destroy(error instanceof Error ? error : new Error(String(error)));
      reject(error);
    };

    parser.on('field', (name, value, info) => {
      if (info.valueTruncated) fail(badMultipart(`field "${name}" exceeds ${MAX_FIELD_BYTES} bytes`));
      else fields[name] = value;
    });
    parser.on('file', (name, stream, info) => {
      // fail() destroys the parser, and busboy then errors this stream, also when no consumer reads it
      // any more (a rejected path, say). Without a listener that error would crash the process.
      stream.on('error', () => {});
      if (name !== 'file') {
        stream.resume();
        fail(badMultipart(`unexpected file part "${name}"; the file part must be named "file"`));
        return;
      }
      try {
        consuming = consume({ fields: { ...fields }, stream, fileName: info.filename, mimeType: info.mimeType, complete });
      } catch (error) {
        // A consumer that throws before returning its promise must fail the request, not leave it hanging.
        consuming = Promise.reject(error);
      }
      consuming.then(
        (result) => {
          if (settled) return;
          settled = true;
          resolve(result);
        },
        (error) => {
          stream.resume();
          fail(error);
        },
      );
    });
    parser.on('filesLimit', () => fail(badMultipart('only one file part is allowed per request')));
    parser.on('partsLimit', () => fail(badMultipart('too many parts')));
    parser.on('fieldsLimit', () => fail(badMultipart('too many fields')));
    parser.on('error', (error: Error) => fail(badMultipart(error.message)));
    parser.on('close', () => {
      if (!consuming) fail(badMultipart('no part named "file" was sent'));
      else markComplete();
    });
    source.on('error', (error) => fail(error));
    source.pipe(parser);
  });
}

function badMultipart(message: string): ValidationError {
  return new ValidationError(`The multipart body is invalid: ${message}.`, [{ field: '(body)', rule: 'multipart', message }]);
}
