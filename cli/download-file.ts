import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { Readable } from 'node:stream';
import { DIGEST_SLICE_BYTES, digestFile, DualDigest, type DigestResult } from '../server/digest';
import type { ApiClient } from './api-client';
import { ApiError, CommandError, VerificationError } from './errors';

/** One file to download, with the digests the manifest promises. */
export interface ExpectedFile {
  fileId: string;
  relativePath: string;
  sizeBytes: number;
  blake3Hex: string;
  sha256Hex: string;
  contentAddress: string;
}

export interface DownloadOptions {
  client: ApiClient;
  file: ExpectedFile;
  /** Final location of the file. */
  target: string;
  /** Staging file that collects the bytes until they pass verification; an existing one is resumed. */
  partial: string;
  /** Called once with the bytes already present before any request (a resumed prefix). */
  onStart(resumedBytes: number): void;
  onProgress(doneBytes: number): void;
}

export type DownloadOutcome = 'downloaded' | 'resumed' | 'present';

function sameDigests(actual: DigestResult, file: ExpectedFile): string[] {
  const differences: string[] = [];
  if (actual.sizeBytes !== file.sizeBytes) differences.push(`size (${actual.sizeBytes} bytes, expected ${file.sizeBytes})`);
  if (actual.sha256Hex !== file.sha256Hex) differences.push('SHA-256');
  if (actual.blake3Hex !== file.blake3Hex) differences.push('BLAKE3');
  return differences;
}

/** Feeds the first `length` bytes of a file to the digest, streaming. */
async function hashPrefix(file: string, length: number, digest: DualDigest): Promise<void> {
  if (length === 0) return;
  for await (const chunk of fs.createReadStream(file, { start: 0, end: length - 1, highWaterMark: DIGEST_SLICE_BYTES })) {
    await digest.updateYielding(chunk as Buffer);
  }
}

/**
 * Downloads one file into `partial`, hashing with BLAKE3 and SHA-256 as the bytes stream, and renames it
 * to `target` only when size and both digests match. A partial file left by an interrupted run is
 * re-hashed and continued with a Range request (If-Range on the content address, so changed content
 * restarts from byte 0). A file that fails verification is deleted and raises VerificationError. An
 * existing `target` with the expected digests is kept; one with other content raises CommandError.
 */
export async function downloadFile(options: DownloadOptions): Promise<DownloadOutcome> {
  const { client, file } = options;

  const existing = await fsp.stat(options.target).catch(() => undefined);
  if (existing) {
    const differences = existing.isFile() ? sameDigests(await digestFile(options.target), file) : ['type (not a regular file)'];
    if (differences.length === 0) {
      options.onStart(file.sizeBytes);
      return 'present';
    }
    throw new CommandError(`${options.target} already exists with different content (${differences.join(', ')}); move it away and pull again.`);
  }

  await fsp.mkdir(path.dirname(options.partial), { recursive: true });
  let offset = (await fsp.stat(options.partial).catch(() => undefined))?.size ?? 0;
  if (offset > file.sizeBytes) {
    await fsp.truncate(options.partial, 0);
    offset = 0;
  }
  let digest = new DualDigest();
  await hashPrefix(options.partial, offset, digest);
  options.onStart(offset);
  // An empty file needs no request, but the rename below still needs a file to move.
  if (file.sizeBytes === 0) await fsp.writeFile(options.partial, '');

  if (offset < file.sizeBytes) {
    const headers: Record<string, string> = {};
    if (offset > 0) {
      headers.Range = `bytes=${offset}-`;
      headers['If-Range'] = `"${file.contentAddress}"`;
    }
    const downloadPath = `/files/${encodeURIComponent(file.fileId)}/download`;
    const downloadUrl = client.url(downloadPath);
    const response = await client.send('GET', downloadPath, { headers });
    if (response.status === 200 && offset > 0) {
      // The server sent the whole representation (If-Range failed or it ignored the range): start over.
      offset = 0;
      digest = new DualDigest();
    } else if (response.status === 206) {
      const contentRange = response.headers.get('content-range') ?? '';
      if (!contentRange.startsWith(`bytes ${offset}-`)) {
        await response.body?.cancel();
        throw new CommandError(`The server responded to the range request for ${file.relativePath} with Content-Range ${JSON.stringify(contentRange)}; expected bytes ${offset}-.`);
      }
    } else if (response.status !== 200) {
      await response.body?.cancel();
      throw new ApiError('GET', downloadUrl, response.status, { detail: `unexpected status for ${file.relativePath}` });
    }

    // Writes go to explicit offsets, so the bytes land where the digest assumes them, whatever else
    // happened to the file since its size was read.
    const handle = await fsp.open(options.partial, offset === 0 ? 'w' : 'r+');
    let written = offset;
    try {
      try {
        for await (const chunk of Readable.fromWeb(response.body! as import('node:stream/web').ReadableStream<Uint8Array>)) {
          const bytes = chunk as Buffer;
          if (written + bytes.byteLength > file.sizeBytes) {
            throw new VerificationError(`The server sent more than the ${file.sizeBytes} bytes of ${file.relativePath}.`);
          }
          await digest.updateYielding(bytes);
          for (let done = 0; done < bytes.byteLength; ) {
            done += (await handle.write(bytes, done, bytes.byteLength - done, written + done)).bytesWritten;
          }
          written += bytes.byteLength;
          options.onProgress(written);
        }
      } catch (error) {
        if (error instanceof VerificationError) throw error;
        // undici reports a connection closed mid-body as a bare "terminated" with the reason in `cause`.
        const cause = (error as { cause?: { message?: string } }).cause?.message ?? (error as Error).message;
        throw new CommandError(
          `Downloading ${file.relativePath} from ${downloadUrl} failed after ${written} of ${file.sizeBytes} bytes: ${cause}. Run the same pull again to resume from the bytes already on disk.`,
        );
      }
      await handle.sync();
    } catch (error) {
      if (error instanceof VerificationError) {
        await handle.close();
        await fsp.rm(options.partial, { force: true });
      }
      throw error;
    } finally {
      await handle.close().catch(() => undefined);
    }
  }

  // The digest covers the bytes read from disk for the resumed prefix and the bytes written after it,
  // so it describes the file on disk only when the file has exactly that length.
  const digestResult = digest.finish();
  const differences = sameDigests(digestResult, file);
  const sizeOnDisk = (await fsp.stat(options.partial)).size;
  if (sizeOnDisk !== file.sizeBytes) differences.push(`size on disk (${sizeOnDisk} bytes, expected ${file.sizeBytes})`);
  if (differences.length > 0) {
    await fsp.rm(options.partial, { force: true });
    throw new VerificationError(`${file.relativePath} failed verification: ${differences.join(', ')} differ from the manifest; the download was deleted.`);
  }
  await fsp.mkdir(path.dirname(options.target), { recursive: true });
  await fsp.rename(options.partial, options.target);
  return offset > 0 ? 'resumed' : 'downloaded';
}
