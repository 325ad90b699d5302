import fs from 'node:fs';
import path from 'node:path';
import * as tus from 'tus-js-client';
import type { ApiClient } from './api-client';
import { ApiError, CommandError } from './errors';
import type { LocalFile } from './local-files';

/** Waits between retries of a failed tus request: network errors, 5xx, 409 offset conflicts and 423 locks. */
const RETRY_DELAYS_MS = [0, 1000, 3000, 5000, 10000];

export interface TusUploadOptions {
  client: ApiClient;
  packageId: string;
  file: LocalFile;
  /** The upload URL a previous run stored for this file, if any. */
  uploadUrl: string | undefined;
  /** Called with the upload URL as soon as the server assigned or confirmed it. */
  onUploadUrl(url: string): void;
  /** Called once before any byte is sent, with the bytes the server already stores (a resumed upload). */
  onStart(resumedBytes: number): void;
  /** Called with the file's bytes the server holds, including those sent before a resume. */
  onProgress(bytesSent: number): void;
  /** Prints a line about the upload, such as a restart. */
  log(message: string): void;
}

/** Reads the length and offset of an unfinished tus upload; returns undefined when the server no longer has it. */
async function readUploadState(client: ApiClient, url: string): Promise<{ length: number; offset: number } | undefined> {
  let response: Response;
  try {
    response = await fetch(url, { method: 'HEAD', headers: { ...client.authHeaders(), 'Tus-Resumable': '1.0.0' } });
  } catch (error) {
    const cause = (error as { cause?: { message?: string } }).cause?.message ?? (error as Error).message;
    throw new CommandError(`HEAD ${url} failed: ${cause}. Check --url and that the server is running.`);
  }
  await response.body?.cancel();
  if (response.status === 404 || response.status === 410) return undefined;
  if (response.status !== 200) throw new CommandError(`HEAD ${url} failed with HTTP ${response.status}.`);
  return { length: Number(response.headers.get('upload-length')), offset: Number(response.headers.get('upload-offset')) };
}

/**
 * Returns `url` and its offset when the upload there can continue with the local file, else undefined.
 * An upload of another length was created for other bytes (the file changed, or a killed run created it
 * for an older version). It is terminated, because tus cannot change an upload's length and sending the
 * local file into it would leave it short or fail.
 */
async function resumableUrl(options: TusUploadOptions, url: string): Promise<{ url: string; offset: number } | undefined> {
  const state = await readUploadState(options.client, url);
  if (!state) return undefined;
  if (state.length === options.file.sizeBytes && state.offset <= state.length) return { url, offset: state.offset };
  options.log(`${options.file.relativePath}: the unfinished upload on the server is ${state.length} bytes long, the local file ${options.file.sizeBytes}; terminating it and starting over`);
  await terminateUpload(options.client, url);
  return undefined;
}

function problemOf(error: tus.DetailedError): Record<string, unknown> | undefined {
  try {
    return JSON.parse(error.originalResponse?.getBody() ?? '') as Record<string, unknown>;
  } catch {
    return undefined;
  }
}

/**
 * Uploads one file over tus, resuming from `uploadUrl` when the server still has that upload. When the
 * server rejects the creation with 409 because an unfinished upload already targets the same path (a
 * run was killed before it could store the URL), this function continues that upload instead.
 */
export async function uploadFileWithTus(options: TusUploadOptions): Promise<void> {
  const { client, file } = options;
  const resumed = options.uploadUrl === undefined ? undefined : await resumableUrl(options, options.uploadUrl);
  // Announced once the server took the upload, so that an adopted upload reports its own offset.
  let startOffset = resumed?.offset ?? 0;
  let announced = false;
  const announce = () => {
    if (announced) return;
    announced = true;
    options.onStart(startOffset);
  };
  return new Promise((resolve, reject) => {
    let adoptedUpload = false;

    const start = (uploadUrl: string | undefined) => {
      // tus-js-client 4.3.1 reads an fs.ReadStream through its path, so it can seek to the resume offset.
      const source = fs.createReadStream(file.absolutePath);
      const finish = (error?: Error) => {
        source.destroy();
        if (error) reject(error);
        else resolve();
      };
      const upload: tus.Upload = new tus.Upload(source as unknown as Buffer, {
        endpoint: client.url('/uploads'),
        uploadUrl: uploadUrl ?? null,
        headers: client.authHeaders(),
        metadata: { package_id: options.packageId, relative_path: file.relativePath, filename: path.basename(file.absolutePath) },
        uploadSize: file.sizeBytes,
        retryDelays: RETRY_DELAYS_MS,
        storeFingerprintForResuming: false,
        onShouldRetry(error) {
          const status = error.originalResponse?.getStatus() ?? 0;
          if (error.originalRequest?.getMethod() === 'POST' && status === 409) return false;
          return status === 0 || status >= 500 || status === 409 || status === 423;
        },
        onUploadUrlAvailable() {
          announce();
          if (upload.url) options.onUploadUrl(upload.url);
        },
        onProgress(bytesSent) {
          announce();
          options.onProgress(bytesSent);
        },
        onSuccess() {
          announce();
          finish();
        },
        onError(error) {
          const detailed = error as tus.DetailedError;
          const status = detailed.originalResponse?.getStatus();
          const problem = detailed.originalResponse ? problemOf(detailed) : undefined;
          if (status === 409 && detailed.originalRequest?.getMethod() === 'POST' && typeof problem?.upload_id === 'string' && !adoptedUpload) {
            adoptedUpload = true;
            source.destroy();
            const existingUrl = client.url(`/uploads/${encodeURIComponent(problem.upload_id)}`);
            resumableUrl(options, existingUrl).then(
              (adopted) => {
                startOffset = adopted?.offset ?? 0;
                start(adopted?.url);
              },
              (checkError: Error) => finish(checkError),
            );
            return;
          }
          if (status !== undefined && problem) {
            finish(new ApiError(detailed.originalRequest.getMethod(), detailed.originalRequest.getURL(), status, problem));
            return;
          }
          finish(new CommandError(`Uploading ${file.relativePath} failed: ${error.message}`));
        },
      });
      upload.start();
    };

    start(resumed?.url);
  });
}

/** Terminates a tus upload (tus termination extension); an upload the server no longer has is ignored. */
export async function terminateUpload(client: ApiClient, url: string): Promise<void> {
  const response = await fetch(url, { method: 'DELETE', headers: { ...client.authHeaders(), 'Tus-Resumable': '1.0.0' } }).catch((error: Error) => {
    throw new CommandError(`Terminating the upload ${url} failed: ${error.message}`);
  });
  await response.body?.cancel();
  if (response.status === 204 || response.status === 404 || response.status === 410) return;
  throw new CommandError(`Terminating the upload ${url} failed with HTTP ${response.status}.`);
}
