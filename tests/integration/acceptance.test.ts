import { execFile, execFileSync } from 'node:child_process';
import { promisify } from 'node:util';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Blake3Hasher } from '@napi-rs/blake-hash';
import { blake3Hex } from '@/server/digest/blake3-hex';
import { decodeCbor } from '@/server/encoding/cbor';
import { pushDirectory } from '../support/push-directory';
import { ApiClient } from '../support/client';
import { ON_POSTGRES } from '../support/database';
import { createTestEnvironment, startServer, type TestEnvironment, type TestServer } from '../support/server';

const ROOT = path.resolve(import.meta.dirname, '../..');
const hasB3sum = (() => {
  try {
    execFileSync('b3sum', ['--version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
})();

const execFileAsync = promisify(execFile);

/**
 * BLAKE3 of each file computed outside our digest module: b3sum when installed, else the hasher fed 64 KiB
 * at a time. b3sum runs asynchronously: a synchronous child process would block the event loop long
 * enough for the server to close idle keep-alive connections unnoticed, and the next request on one of
 * them would fail.
 */
async function independentBlake3(paths: string[]): Promise<Map<string, string>> {
  const result = new Map<string, string>();
  if (hasB3sum) {
    for (let start = 0; start < paths.length; start += 500) {
      const batch = paths.slice(start, start + 500);
      const { stdout } = await execFileAsync('b3sum', ['--no-names', ...batch], { encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 });
      stdout.trim().split('\n').forEach((line, index) => result.set(batch[index], line.trim()));
    }
    return result;
  }
  for (const file of paths) {
    const hasher = new Blake3Hasher();
    const bytes = fs.readFileSync(file);
    for (let offset = 0; offset < bytes.length; offset += 65536) hasher.update(bytes.subarray(offset, offset + 65536));
    result.set(file, hasher.digest('hex'));
  }
  return result;
}

let environment: TestEnvironment;
let server: TestServer;
let api: ApiClient;

beforeAll(async () => {
  environment = await createTestEnvironment();
  server = await startServer(environment);
  api = new ApiClient(server.url, environment.adminToken);
});

afterAll(async () => {
  await server?.stop();
  await environment?.cleanup();
});

describe('pushing a real directory tree', () => {
  // Embedded PGlite runs every query on the server's own thread, so it gets the 2,700-file esm subtree
  // instead of the whole 9,000-file tree; ACCEPTANCE_TREE overrides the choice.
  const tree = process.env.ACCEPTANCE_TREE ?? (ON_POSTGRES ? 'node_modules/next/dist' : 'node_modules/next/dist/esm');

  it(`round-trips every file of ${tree} with matching size, SHA-256 and BLAKE3`, { timeout: 900_000 }, async () => {
    const directory = path.join(ROOT, tree);
    const pkg = await api.createPackage({ name: 'next-dist' });
    const pushed = await pushDirectory({ baseUrl: server.url, token: environment.adminToken, packageId: pkg.id, directory, concurrency: 8 });
    expect(pushed.length).toBeGreaterThan(1000);

    const finalized = await (await api.post(`/packages/${pkg.id}/finalize`)).json();
    const cbor = new Uint8Array(await (await api.get(`/packages/${pkg.id}/manifest`)).arrayBuffer());
    const again = new Uint8Array(await (await api.get(`/packages/${pkg.id}/manifest`)).arrayBuffer());
    expect(`blake3:${blake3Hex(cbor)}`).toBe(finalized.manifest_digest);
    expect(Buffer.compare(cbor, again)).toBe(0);
    const manifest = decodeCbor(cbor) as { file_count: number; files: { relative_path: string; sha256_hex: string; blake3_hex: string; size_bytes: number }[] };
    expect(manifest.file_count).toBe(pushed.length);

    const expectedBlake3 = await independentBlake3(pushed.map((file) => file.absolutePath));
    const manifestByPath = new Map(manifest.files.map((file) => [file.relative_path, file]));
    let next = 0;
    const failures: string[] = [];
    const worker = async () => {
      while (next < pushed.length) {
        const file = pushed[next++];
        const response = await api.get(`/files/${file.record.id}/download`);
        const bytes = new Uint8Array(await response.arrayBuffer());
        const sha256 = crypto.createHash('sha256').update(fs.readFileSync(file.absolutePath)).digest('hex');
        const served = crypto.createHash('sha256').update(bytes).digest('hex');
        const listed = manifestByPath.get(file.relativePath);
        if (response.status !== 200) failures.push(`${file.relativePath}: status ${response.status}`);
        else if (bytes.length !== file.sizeBytes) failures.push(`${file.relativePath}: size ${bytes.length} != ${file.sizeBytes}`);
        else if (served !== sha256) failures.push(`${file.relativePath}: served SHA-256 differs`);
        else if (listed?.sha256_hex !== sha256) failures.push(`${file.relativePath}: manifest SHA-256 differs`);
        else if (listed.blake3_hex !== expectedBlake3.get(file.absolutePath)) failures.push(`${file.relativePath}: manifest BLAKE3 differs`);
        else if (blake3Hex(bytes) !== expectedBlake3.get(file.absolutePath)) failures.push(`${file.relativePath}: served BLAKE3 differs`);
      }
    };
    await Promise.all(Array.from({ length: 8 }, worker));
    expect(failures).toEqual([]);
  });
});

describe('uploads racing a finalize', () => {
  it('lists exactly the files that got 201 and answers 409 to the rest', async () => {
    const pkg = await api.createPackage();
    const uploads = Array.from({ length: 30 }, (_, index) =>
      api.putFile(pkg.id, `race/file-${index}.bin`, crypto.randomBytes(64 * 1024 + index)).then(async (response) => ({
        index,
        status: response.status,
        body: await response.json(),
      })),
    );
    await new Promise((resolve) => setTimeout(resolve, 30));
    const finalize = api.post(`/packages/${pkg.id}/finalize`);
    const results = await Promise.all(uploads);
    expect((await finalize).status).toBe(200);

    const statuses = results.map((result) => result.status);
    expect(statuses.every((status) => status === 201 || status === 409)).toBe(true);
    const accepted = results.filter((result) => result.status === 201).map((result) => `race/file-${result.index}.bin`).sort();
    const manifest = decodeCbor(new Uint8Array(await (await api.get(`/packages/${pkg.id}/manifest`)).arrayBuffer())) as {
      files: { relative_path: string }[];
    };
    expect(manifest.files.map((file) => file.relative_path)).toEqual(accepted);
  });
});

