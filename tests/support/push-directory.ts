import fs from 'node:fs';
import path from 'node:path';
import { Readable } from 'node:stream';

export interface PushOptions {
  baseUrl: string;
  token: string;
  packageId: string;
  directory: string;
  /** Uploads running at once. */
  concurrency?: number;
  onFile?: (relativePath: string, status: number) => void;
}

export interface PushedFile {
  relativePath: string;
  absolutePath: string;
  sizeBytes: number;
  record: Record<string, any>;
}

/** Lists every regular file below `directory` as `/`-separated relative paths, in a stable order. */
export function listFilesRecursively(directory: string): { relativePath: string; absolutePath: string }[] {
  const result: { relativePath: string; absolutePath: string }[] = [];
  const walk = (current: string, prefix: string) => {
    for (const entry of fs.readdirSync(current, { withFileTypes: true }).sort((a, b) => (a.name < b.name ? -1 : 1))) {
      const absolutePath = path.join(current, entry.name);
      const relativePath = prefix ? `${prefix}/${entry.name}` : entry.name;
      if (entry.isDirectory()) walk(absolutePath, relativePath);
      else if (entry.isFile()) result.push({ relativePath, absolutePath });
    }
  };
  walk(directory, '');
  return result;
}

/** Uploads every file of a directory tree into an open package with raw PUT requests, streaming each file. */
export async function pushDirectory(options: PushOptions): Promise<PushedFile[]> {
  const files = listFilesRecursively(options.directory);
  const pushed: PushedFile[] = [];
  let next = 0;

  const worker = async () => {
    while (next < files.length) {
      const file = files[next++];
      const encoded = file.relativePath.split('/').map(encodeURIComponent).join('/');
      const sizeBytes = fs.statSync(file.absolutePath).size;
      const response = await fetch(`${options.baseUrl}/api/v1/packages/${options.packageId}/files/${encoded}`, {
        method: 'PUT',
        headers: { authorization: `Bearer ${options.token}`, 'content-length': String(sizeBytes) },
        body: Readable.toWeb(fs.createReadStream(file.absolutePath)) as ReadableStream,
        duplex: 'half',
      } as RequestInit);
      const body = await response.json();
      options.onFile?.(file.relativePath, response.status);
      if (response.status !== 201) throw new Error(`PUT ${file.relativePath} answered ${response.status}: ${JSON.stringify(body)}`);
      pushed.push({ ...file, sizeBytes, record: body });
    }
  };
  await Promise.all(Array.from({ length: options.concurrency ?? 8 }, worker));
  return pushed;
}
