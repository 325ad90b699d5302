import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { expect } from 'vitest';
import { blake3Hex } from '@/server/digest/blake3-hex';
import type { ApiClient } from './client';
import { toolDigest, writeRandomFile } from './files';
import { createTusUpload } from './tus';

const MiB = 1024 * 1024;

/** Returns the lines of a server's output that pino logged at level error or fatal, or Next.js printed as errors. */
export function errorLines(output: string): string[] {
  return output.split('\n').filter((line) => /"level":(50|60)\b/.test(line) || line.trimStart().startsWith('⨯'));
}

/** Returns the events of `eventType` about `subjectId`, read from the start of the log. */
export async function eventsOf(api: ApiClient, eventType: string, subjectId: string): Promise<any[]> {
  return (await api.events(0, 0, `&subject_id=${subjectId}&event_type=${eventType}`)).events;
}

/**
 * Uploads `source` with tus: creates the upload through the first client, then sends it in PATCH
 * requests of `chunkBytes`, the first through the first client, the next through the second, and so on.
 * Asserts every response and returns the upload id.
 */
export async function uploadAlternating(apis: ApiClient[], packageId: string, relativePath: string, source: string, chunkBytes: number): Promise<string> {
  const size = fs.statSync(source).size;
  const uploadPath = await createTusUpload(apis[0], packageId, relativePath, size);

  const handle = fs.openSync(source, 'r');
  try {
    for (let offset = 0, index = 0; offset < size; offset += chunkBytes, index += 1) {
      const chunk = Buffer.alloc(Math.min(chunkBytes, size - offset));
      fs.readSync(handle, chunk, 0, chunk.length, offset);
      const patch = await apis[index % apis.length].request('PATCH', uploadPath, {
        headers: { 'Tus-Resumable': '1.0.0', 'Upload-Offset': String(offset), 'Content-Type': 'application/offset+octet-stream' },
        body: new Uint8Array(chunk),
      });
      expect(patch.status, `PATCH ${index} at offset ${offset}`).toBe(204);
      expect(patch.headers.get('upload-offset')).toBe(String(offset + chunk.length));
    }
  } finally {
    fs.closeSync(handle);
  }
  return uploadPath.split('/').pop()!;
}

/**
 * Writes a random file of six 5 MiB chunks and a tail into `directory` and uploads it to a new package
 * with uploadAlternating. Then checks the package's only file against it (size, BLAKE3 from b3sum,
 * SHA-256 from node:crypto, the downloaded bytes, one upload.completed event) and returns the record.
 */
export async function checkAlternatingUpload(apis: ApiClient[], directory: string): Promise<Record<string, any>> {
  const source = path.join(directory, 'alternating.bin');
  const chunkBytes = 5 * MiB;
  writeRandomFile(source, 6 * chunkBytes + 123_457);
  const packageId = (await apis[0].createPackage({ name: 'alternating' })).id;

  const uploadId = await uploadAlternating(apis, packageId, 'alternating.bin', source, chunkBytes);

  const listed = await (await apis[1].get(`/packages/${packageId}/files`)).json();
  expect(listed.files).toHaveLength(1);
  const [file] = listed.files;
  expect(file.size_bytes).toBe(fs.statSync(source).size);
  expect(file.digest_primary_hex).toBe(toolDigest('/usr/bin/b3sum', source));
  expect(file.digest_sha256_hex).toBe(crypto.createHash('sha256').update(fs.readFileSync(source)).digest('hex'));
  const download = await apis[0].get(`/files/${file.id}/download`);
  expect(download.status).toBe(200);
  expect(blake3Hex(new Uint8Array(await download.arrayBuffer()))).toBe(file.digest_primary_hex);
  expect(await eventsOf(apis[0], 'upload.completed', uploadId)).toHaveLength(1);
  return file;
}
