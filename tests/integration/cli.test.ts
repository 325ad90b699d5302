import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ApiClient } from '../support/client';
import { startRecordingProxy, type RecordedExchange, type RecordingProxy } from '../support/recording-proxy';
import { createTestEnvironment, startServer, type TestEnvironment, type TestServer } from '../support/server';

const ROOT = path.resolve(import.meta.dirname, '../..');
const BIN = path.join(ROOT, 'bin/artifact-store.mjs');
const MiB = 1024 * 1024;

interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

let environment: TestEnvironment;
let server: TestServer;
let api: ApiClient;
let stateDir: string;

/** Starts the CLI as a child process from a directory outside the clone, as an operator would run it. */
function spawnCli(args: string[], extraEnv: Record<string, string> = {}): ChildProcess {
  return spawn(process.execPath, [BIN, ...args], {
    cwd: environment.dir,
    env: {
      ...process.env,
      HOME: environment.dir,
      ARTIFACT_STORE_URL: server.url,
      ARTIFACT_STORE_TOKEN: environment.adminToken,
      ARTIFACT_STORE_STATE_DIR: stateDir,
      ...extraEnv,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
}

function collect(child: ChildProcess): Promise<CliResult> {
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (chunk) => (stdout += chunk));
  child.stderr!.on('data', (chunk) => (stderr += chunk));
  return new Promise((resolve) => child.on('close', (code) => resolve({ code, stdout, stderr })));
}

function runCli(args: string[], extraEnv: Record<string, string> = {}): Promise<CliResult> {
  return collect(spawnCli(args, extraEnv));
}

function writeRandomFile(file: string, sizeBytes: number): void {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.writeFileSync(file, crypto.randomBytes(sizeBytes));
}

/** Digest printed by an independent tool (sha256sum, b3sum), not by the code under test. */
function toolDigest(tool: string, file: string): string {
  return execFileSync(tool, [file], { encoding: 'utf8' }).split(/\s+/)[0];
}

/**
 * Sums the sizes of the files in a directory, 0 if it does not exist. A pull renames finished files out of its
 * partial directory, removes its lock file and at the end the directory, so any of them may vanish while it is read.
 */
function directorySize(directory: string): number {
  let names: string[];
  try {
    names = fs.readdirSync(directory);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return 0;
    throw error;
  }
  let total = 0;
  for (const name of names) total += fs.statSync(path.join(directory, name), { throwIfNoEntry: false })?.size ?? 0;
  return total;
}

async function waitFor(condition: () => boolean | Promise<boolean>, what: string, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(50);
  }
}

function uploadTarget(exchange: RecordedExchange): string | undefined {
  const header = exchange.requestHeaders['upload-metadata'];
  if (typeof header !== 'string') return undefined;
  for (const pair of header.split(',')) {
    const [key, value] = pair.trim().split(' ');
    if (key === 'relative_path' && value) return Buffer.from(value, 'base64').toString('utf8');
  }
  return undefined;
}

/** Maps each tus upload path seen by the proxy (from creation Location headers) to its package path. */
function uploadPaths(exchanges: RecordedExchange[]): Map<string, string> {
  const paths = new Map<string, string>();
  for (const exchange of exchanges) {
    const location = exchange.responseHeaders?.location;
    const target = uploadTarget(exchange);
    if (exchange.method === 'POST' && typeof location === 'string' && target) paths.set(new URL(location, 'http://x').pathname, target);
  }
  return paths;
}

beforeAll(async () => {
  environment = await createTestEnvironment();
  server = await startServer(environment);
  api = new ApiClient(server.url, environment.adminToken);
  stateDir = path.join(environment.dir, 'cli-state');
});

afterAll(async () => {
  await server?.stop();
  await environment?.cleanup();
});

describe('cli push', () => {
  it('resumes after SIGKILL without resending files', { timeout: 300_000 }, async () => {
    const source = path.join(environment.dir, 'push-source');
    const sizes: Record<string, number> = {
      'a.bin': 3 * MiB,
      'b.bin': 3 * MiB,
      'c/d.bin': 3 * MiB,
      'e/large.bin': 24 * MiB,
      'empty.txt': 0,
      'z/notes.txt': 1000,
    };
    for (const [relativePath, size] of Object.entries(sizes)) writeRandomFile(path.join(source, relativePath), size);
    const pushArgs = (url: string) => ['push', source, '--name', 'cli-resume', '--producer', 'ci', '--subject', 'app@1.0.0', '--class', 'standard', '--parallel', '2', '--finalize', '--url', url];

    // 6 MiB/s per request: the large file needs about 4 s, so the kill lands in the middle of it.
    const proxy = await startRecordingProxy(server.url, { bytesPerSecond: 6 * MiB });
    let firstRun: RecordedExchange[];
    try {
      const child = spawnCli(pushArgs(proxy.url));
      const result = collect(child);
      const largeBytesSent = () => {
        const paths = uploadPaths(proxy.exchanges);
        return proxy.exchanges.filter((exchange) => exchange.method === 'PATCH' && paths.get(exchange.path) === 'e/large.bin').reduce((sum, exchange) => sum + exchange.requestBytes, 0);
      };
      await waitFor(() => largeBytesSent() >= 8 * MiB || child.exitCode !== null, 'half of e/large.bin to reach the server');
      child.kill('SIGKILL');
      const killed = await result;
      expect(killed.code, killed.stderr).toBeNull();
      firstRun = [...proxy.exchanges];
      proxy.exchanges.length = 0;

      // Files the server completed before the kill; the rest must be resumed or started.
      const packages = (await (await api.get('/packages?name=cli-resume')).json()).packages;
      expect(packages).toHaveLength(1);
      const packageId = packages[0].id;
      const completedBeforeKill = (await (await api.get(`/packages/${packageId}/files`)).json()).files.map((file: any) => file.relative_path);
      expect(completedBeforeKill).toContain('a.bin');
      expect(completedBeforeKill).not.toContain('e/large.bin');

      const second = await runCli(pushArgs(proxy.url));
      expect(second.code, second.stderr).toBe(0);
      expect(second.stderr).toContain(`continuing package ${packageId}`);
      const [printedId, printedDigest] = second.stdout.trim().split('\n');
      expect(printedId).toBe(packageId);
      expect(printedDigest).toMatch(/^blake3:[0-9a-f]{64}$/);

      // No completed file was created or sent again.
      const paths = new Map([...uploadPaths(firstRun), ...uploadPaths(proxy.exchanges)]);
      const createdAgain = proxy.exchanges.filter((exchange) => exchange.method === 'POST' && exchange.path.startsWith('/api/v1/uploads')).map(uploadTarget);
      for (const relativePath of completedBeforeKill) expect(createdAgain).not.toContain(relativePath);
      const patchedAgain = proxy.exchanges.filter((exchange) => exchange.method === 'PATCH').map((exchange) => paths.get(exchange.path));
      for (const relativePath of completedBeforeKill) expect(patchedAgain).not.toContain(relativePath);

      // The large file continued from the offset the server reported, over the upload URL of the first run.
      expect(createdAgain).not.toContain('e/large.bin');
      const resumeHead = proxy.exchanges.find((exchange) => exchange.method === 'HEAD' && paths.get(exchange.path) === 'e/large.bin');
      expect(resumeHead?.status).toBe(200);
      const offset = Number(resumeHead!.responseHeaders!['upload-offset']);
      expect(offset).toBeGreaterThan(0);
      const resentBytes = proxy.exchanges
        .filter((exchange) => exchange.method === 'PATCH' && paths.get(exchange.path) === 'e/large.bin')
        .reduce((sum, exchange) => sum + exchange.requestBytes, 0);
      expect(resentBytes).toBe(sizes['e/large.bin'] - offset);

      // Exactly the local files, with the digests independent tools compute, and one file.added event each.
      const pkg = await (await api.get(`/packages/${packageId}`)).json();
      expect(pkg.status).toBe('finalized');
      expect(pkg.manifest_digest).toBe(printedDigest);
      const files = (await (await api.get(`/packages/${packageId}/files`)).json()).files;
      expect(files.map((file: any) => file.relative_path).sort()).toEqual(Object.keys(sizes).sort());
      for (const file of files) {
        const local = path.join(source, file.relative_path);
        expect(file.size_bytes).toBe(sizes[file.relative_path]);
        expect(file.digest_sha256_hex).toBe(toolDigest('sha256sum', local));
        expect(file.digest_primary_hex).toBe(toolDigest('/usr/bin/b3sum', local));
      }
      const events = await api.events(0, 0, `&subject_kind=package&subject_id=${packageId}`);
      const added = events.events.filter((event) => event.event_type === 'file.added').map((event) => event.payload.relative_path);
      expect(added.sort()).toEqual(Object.keys(sizes).sort());
      expect(fs.readdirSync(stateDir)).toEqual([]);
    } finally {
      await proxy.close();
    }
  });

  it('restarts a file changed between runs', { timeout: 300_000 }, async () => {
    const source = path.join(environment.dir, 'push-changed');
    const file = path.join(source, 'changing.bin');
    writeRandomFile(file, 24 * MiB);
    const pushArgs = (url: string) => ['push', source, '--name', 'cli-changed', '--producer', 'ci', '--subject', 's', '--class', 'standard', '--url', url];
    const proxy = await startRecordingProxy(server.url, { bytesPerSecond: 6 * MiB });
    try {
      const child = spawnCli(pushArgs(proxy.url));
      const result = collect(child);
      const patchedBytes = () => proxy.exchanges.filter((exchange) => exchange.method === 'PATCH').reduce((sum, exchange) => sum + exchange.requestBytes, 0);
      await waitFor(() => patchedBytes() >= 8 * MiB || child.exitCode !== null, 'part of changing.bin to reach the server');
      child.kill('SIGKILL');
      expect((await result).code).toBeNull();
      const firstUpload = uploadPaths(proxy.exchanges);
      expect([...firstUpload.values()]).toEqual(['changing.bin']);
      proxy.exchanges.length = 0;

      writeRandomFile(file, 24 * MiB);
      const second = await runCli(pushArgs(proxy.url));
      expect(second.code, second.stderr).toBe(0);
      expect(second.stderr).toContain('changing.bin: changed since its upload started');
      const deleted = proxy.exchanges.filter((exchange) => exchange.method === 'DELETE').map((exchange) => exchange.path);
      expect(deleted).toEqual([...firstUpload.keys()]);

      const packageId = second.stdout.trim();
      const files = (await (await api.get(`/packages/${packageId}/files`)).json()).files;
      expect(files).toHaveLength(1);
      expect(files[0].digest_sha256_hex).toBe(toolDigest('sha256sum', file));
      expect(files[0].digest_primary_hex).toBe(toolDigest('/usr/bin/b3sum', file));
    } finally {
      await proxy.close();
    }
  });

  it('restarts an adopted upload of another length', { timeout: 300_000 }, async () => {
    const source = path.join(environment.dir, 'push-adopt-length');
    const file = path.join(source, 'shrunk.bin');
    writeRandomFile(file, 24 * MiB);
    const pushArgs = (url: string) => ['push', source, '--name', 'cli-adopt-length', '--producer', 'ci', '--subject', 's', '--class', 'standard', '--url', url];
    const earlierStateFiles = fs.existsSync(stateDir) ? fs.readdirSync(stateDir) : [];
    const proxy = await startRecordingProxy(server.url, { bytesPerSecond: 6 * MiB });
    try {
      const child = spawnCli(pushArgs(proxy.url));
      const result = collect(child);
      const patchedBytes = () => proxy.exchanges.filter((exchange) => exchange.method === 'PATCH').reduce((sum, exchange) => sum + exchange.requestBytes, 0);
      await waitFor(() => patchedBytes() >= 8 * MiB || child.exitCode !== null, 'part of shrunk.bin to reach the server');
      child.kill('SIGKILL');
      expect((await result).code).toBeNull();
      const firstUpload = [...uploadPaths(proxy.exchanges).keys()];
      expect(firstUpload).toHaveLength(1);
      proxy.exchanges.length = 0;

      // As if the run died between creating the upload and storing its URL: the next run meets the
      // server's unfinished upload through the 409 on creation, and the local file is shorter now.
      const stateFile = fs.readdirSync(stateDir).find((name) => name.endsWith('.json') && !earlierStateFiles.includes(name))!;
      const state = JSON.parse(fs.readFileSync(path.join(stateDir, stateFile), 'utf8'));
      state.uploads = {};
      fs.writeFileSync(path.join(stateDir, stateFile), JSON.stringify(state));
      fs.truncateSync(file, 20 * MiB);

      const second = await runCli(pushArgs(proxy.url));
      expect(second.code, second.stderr).toBe(0);
      expect(second.stderr).toContain(`shrunk.bin: the unfinished upload on the server is ${24 * MiB} bytes long, the local file ${20 * MiB}`);
      expect(second.stderr).not.toMatch(/\n\s+at /);
      const deleted = proxy.exchanges.filter((exchange) => exchange.method === 'DELETE').map((exchange) => exchange.path);
      expect(deleted).toEqual(firstUpload);

      const files = (await (await api.get(`/packages/${second.stdout.trim()}/files`)).json()).files;
      expect(files).toHaveLength(1);
      expect(files[0].size_bytes).toBe(20 * MiB);
      expect(files[0].digest_sha256_hex).toBe(toolDigest('sha256sum', file));
      expect(files[0].digest_primary_hex).toBe(toolDigest('/usr/bin/b3sum', file));
    } finally {
      await proxy.close();
    }
  });

  it('push reuses the package of a lost create response', async () => {
    const source = path.join(environment.dir, 'push-lost-create');
    writeRandomFile(path.join(source, 'one.bin'), 64 * 1024);
    const proxy = await startRecordingProxy(server.url, { dropResponse: { method: 'POST', path: '/api/v1/packages', count: 1 } });
    const packagesNamed = async () => (await (await api.get('/packages?name=cli-lost-create')).json()).packages.map((pkg: any) => pkg.id);
    try {
      const pushArgs = ['push', source, '--name', 'cli-lost-create', '--producer', 'ci', '--subject', 's', '--class', 'standard', '--url', proxy.url];
      const lost = await runCli(pushArgs);
      expect(lost.code).toBe(1);
      expect(lost.stderr).toContain(`POST ${proxy.url}/api/v1/packages failed`);
      const createdByServer = await packagesNamed();
      expect(createdByServer).toHaveLength(1);

      const again = await runCli(pushArgs);
      expect(again.code, again.stderr).toBe(0);
      expect(again.stdout.trim().split('\n')[0]).toBe(createdByServer[0]);
      expect(await packagesNamed()).toEqual(createdByServer);
      const creates = proxy.exchanges.filter((exchange) => exchange.method === 'POST' && exchange.path === '/api/v1/packages');
      expect(creates).toHaveLength(2);
      expect(creates[0].requestHeaders['idempotency-key']).toMatch(/^"[0-9a-f-]{36}"$/);
      expect(creates[1].requestHeaders['idempotency-key']).toBe(creates[0].requestHeaders['idempotency-key']);
      const files = (await (await api.get(`/packages/${createdByServer[0]}/files`)).json()).files;
      expect(files.map((file: any) => file.relative_path)).toEqual(['one.bin']);
    } finally {
      await proxy.close();
    }
  });

  it('push forgets the key of a rejected create', async () => {
    const source = path.join(environment.dir, 'push-rejected-create');
    writeRandomFile(path.join(source, 'one.bin'), 1024);
    const earlierStateFiles = fs.existsSync(stateDir) ? fs.readdirSync(stateDir) : [];
    const result = await runCli(['push', source, '--name', 'cli-rejected-create', '--producer', 'ci', '--subject', 's', '--class', 'no-such-class']);
    expect(result.code).toBe(1);
    expect(result.stderr).toContain('Unknown retention class "no-such-class"');
    expect(fs.readdirSync(stateDir).filter((name) => !earlierStateFiles.includes(name))).toEqual([]);
  });

  it('second concurrent push exits 1', { timeout: 300_000 }, async () => {
    const source = path.join(environment.dir, 'push-concurrent');
    writeRandomFile(path.join(source, 'big.bin'), 16 * MiB);
    const pushArgs = (url: string) => ['push', source, '--name', 'cli-concurrent', '--producer', 'ci', '--subject', 's', '--class', 'standard', '--finalize', '--url', url];
    const earlierStateFiles = fs.existsSync(stateDir) ? fs.readdirSync(stateDir) : [];
    const proxy = await startRecordingProxy(server.url, { bytesPerSecond: 6 * MiB });
    try {
      const first = spawnCli(pushArgs(proxy.url));
      const firstResult = collect(first);
      const patchedBytes = () => proxy.exchanges.filter((exchange) => exchange.method === 'PATCH').reduce((sum, exchange) => sum + exchange.requestBytes, 0);
      await waitFor(() => patchedBytes() > 0 || first.exitCode !== null, 'the first push to start uploading');

      const second = await runCli(pushArgs(proxy.url));
      expect(second.code).toBe(1);
      expect(second.stderr).toMatch(/A push of .*push-concurrent with the same options is already running as process \d+/);

      const done = await firstResult;
      expect(done.code, done.stderr).toBe(0);
      const packages = (await (await api.get('/packages?name=cli-concurrent')).json()).packages;
      expect(packages.map((pkg: any) => pkg.id)).toEqual([done.stdout.trim().split('\n')[0]]);
      // Neither the state file of the finalized push nor its lock file is left behind.
      expect(fs.readdirSync(stateDir).filter((name) => !earlierStateFiles.includes(name))).toEqual([]);
    } finally {
      await proxy.close();
    }
  });

  it('rejects symlinks before uploading', async () => {
    const source = path.join(environment.dir, 'push-symlink');
    writeRandomFile(path.join(source, 'real.bin'), 1000);
    fs.symlinkSync('real.bin', path.join(source, 'link.bin'));
    const result = await runCli(['push', source, '--name', 'cli-symlink', '--producer', 'ci', '--subject', 's', '--class', 'standard']);
    expect(result.code).toBe(1);
    expect(result.stderr).toContain('link.bin: symbolic link');
    const packages = (await (await api.get('/packages?name=cli-symlink')).json()).packages;
    expect(packages).toEqual([]);
  });
  it('lists a non-UTF-8 name up front', async () => {
    const source = path.join(environment.dir, 'push-latin1');
    writeRandomFile(path.join(source, 'ok.txt'), 10);
    // "lat" followed by 0xE9, the Latin-1 byte of é, which is not valid UTF-8 on its own.
    fs.writeFileSync(Buffer.concat([Buffer.from(`${source}/`), Buffer.from([0x6c, 0x61, 0x74, 0xe9])]), 'b');
    const result = await runCli(['push', source, '--name', 'cli-latin1', '--producer', 'ci', '--subject', 's', '--class', 'standard']);
    expect(result.code).toBe(1);
    expect(result.stderr).toContain(`1 entry of ${source} cannot become package files`);
    expect(result.stderr).toContain('"lat\ufffd": name is not valid UTF-8');
    expect(result.stderr).not.toContain('ENOENT');
    const packages = (await (await api.get('/packages?name=cli-latin1')).json()).packages;
    expect(packages).toEqual([]);
  });
});

describe('cli pull and verify', () => {
  let packageId: string;
  let source: string;
  const largeSize = 32 * MiB;

  beforeAll(async () => {
    source = path.join(environment.dir, 'pull-source');
    writeRandomFile(path.join(source, 'large.bin'), largeSize);
    writeRandomFile(path.join(source, 'docs/readme.txt'), 5000);
    writeRandomFile(path.join(source, 'docs/nested/data.bin'), 200_000);
    writeRandomFile(path.join(source, 'empty.txt'), 0);
    const pushed = await runCli(['push', source, '--name', 'cli-pull', '--producer', 'ci', '--subject', 'app@2', '--class', 'standard', '--finalize']);
    expect(pushed.code, pushed.stderr).toBe(0);
    packageId = pushed.stdout.trim().split('\n')[0];
  });

  it('pull then verify passes; one changed byte exits 3', async () => {
    const target = path.join(environment.dir, 'pulled');
    const pulled = await runCli(['pull', packageId, target]);
    expect(pulled.code, pulled.stderr).toBe(0);
    expect(fs.existsSync(path.join(target, 'manifest.cbor'))).toBe(true);
    expect(fs.existsSync(path.join(target, 'manifest.json'))).toBe(true);
    expect(fs.existsSync(path.join(target, '.artifact-store-partial'))).toBe(false);
    expect(fs.statSync(path.join(target, 'empty.txt')).size).toBe(0);
    expect(toolDigest('/usr/bin/b3sum', path.join(target, 'large.bin'))).toBe(toolDigest('/usr/bin/b3sum', path.join(source, 'large.bin')));

    const verified = await runCli(['verify', target], { ARTIFACT_STORE_URL: 'http://127.0.0.1:9' });
    expect(verified.code, verified.stderr).toBe(0);

    const changed = path.join(target, 'docs/nested/data.bin');
    const bytes = fs.readFileSync(changed);
    bytes[1234] ^= 0x01;
    fs.writeFileSync(changed, bytes);
    const mismatch = await runCli(['verify', target]);
    expect(mismatch.code).toBe(3);
    expect(mismatch.stderr).toContain('changed: docs/nested/data.bin');
  });

  it('verify commands agree on manifests', async () => {
    const target = path.join(environment.dir, 'pulled-manifests');
    const pulled = await runCli(['pull', packageId, target]);
    expect(pulled.code, pulled.stderr).toBe(0);
    const cborPath = path.join(target, 'manifest.cbor');
    const jsonPath = path.join(target, 'manifest.json');
    const runScript = (args: string[]) => collect(spawn(path.join(ROOT, 'node_modules/.bin/tsx'), [path.join(ROOT, 'scripts/verify.ts'), ...args], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] }));

    // The manifest files pull writes are not extra files, for either command.
    const script = await runScript([target, '--manifest', cborPath]);
    expect(script.code, script.stderr).toBe(0);
    expect(script.stderr).not.toContain('extra');
    const command = await runCli(['verify', target, '--manifest', cborPath]);
    expect(command.code, command.stderr).toBe(0);

    // A manifest.json that is not a manifest is named, also when --manifest points at the CBOR form.
    const goodJson = fs.readFileSync(jsonPath);
    fs.writeFileSync(jsonPath, '{"not":"a manifest"}');
    for (const result of [await runCli(['verify', target]), await runCli(['verify', target, '--manifest', cborPath]), await runScript([target, '--manifest', cborPath])]) {
      expect(result.code, result.stderr).toBe(3);
      expect(result.stderr).toContain('manifest.json: The manifest has no valid files list');
    }
    fs.writeFileSync(jsonPath, goodJson);

    // One changed byte in manifest.cbor is a mismatch (3), not an unreadable manifest (1).
    const goodCbor = fs.readFileSync(cborPath);
    const changedCbor = Buffer.from(goodCbor);
    changedCbor[changedCbor.length - 10] ^= 0x01;
    fs.writeFileSync(cborPath, changedCbor);
    for (const result of [await runCli(['verify', target]), await runScript([target, '--manifest', cborPath])]) {
      expect(result.code, result.stderr).toBe(3);
      expect(result.stderr).toContain('manifest.cbor');
    }
    fs.writeFileSync(cborPath, goodCbor);
    const restored = await runCli(['verify', target]);
    expect(restored.code, restored.stderr).toBe(0);

    // A manifest that cannot be read at all is a failure (1).
    const unreadable = await runCli(['verify', target, '--manifest', path.join(target, 'no-such-manifest.cbor')]);
    expect(unreadable.code).toBe(1);
    expect(unreadable.stderr).toContain('Cannot read the manifest');
  });

  it('pull resumes a large file with a Range request', { timeout: 300_000 }, async () => {
    const target = path.join(environment.dir, 'pulled-resume');
    const proxy = await startRecordingProxy(server.url, { bytesPerSecond: 8 * MiB });
    try {
      const partialDirectory = path.join(target, '.artifact-store-partial');
      const child = spawnCli(['pull', packageId, target, '--url', proxy.url, '--parallel', '1']);
      const result = collect(child);
      await waitFor(() => directorySize(partialDirectory) >= largeSize / 2 || child.exitCode !== null, 'half of large.bin on disk');
      child.kill('SIGKILL');
      expect((await result).code).toBeNull();
      expect(fs.existsSync(path.join(target, 'large.bin'))).toBe(false);
      const firstRunDownloads = proxy.exchanges.filter((exchange) => exchange.path.endsWith('/download'));
      expect(firstRunDownloads.every((exchange) => exchange.requestHeaders.range === undefined)).toBe(true);
      proxy.exchanges.length = 0;

      const resumed = await runCli(['pull', packageId, target, '--url', proxy.url, '--json']);
      expect(resumed.code, resumed.stderr).toBe(0);
      expect(JSON.parse(resumed.stdout).resumed).toBe(1);
      const ranged = proxy.exchanges.filter((exchange) => exchange.path.endsWith('/download') && exchange.requestHeaders.range !== undefined);
      expect(ranged).toHaveLength(1);
      const start = Number(/^bytes=(\d+)-$/.exec(String(ranged[0].requestHeaders.range))![1]);
      expect(start).toBeGreaterThanOrEqual(largeSize / 2);
      expect(ranged[0].status).toBe(206);
      expect(ranged[0].responseBytes).toBe(largeSize - start);
      const fullDownloads = proxy.exchanges.filter((exchange) => exchange.path.endsWith('/download') && exchange.requestHeaders.range === undefined);
      expect(fullDownloads.reduce((sum, exchange) => sum + exchange.responseBytes, 0)).toBeLessThan(largeSize);

      expect(toolDigest('sha256sum', path.join(target, 'large.bin'))).toBe(toolDigest('sha256sum', path.join(source, 'large.bin')));
      const verified = await runCli(['verify', target]);
      expect(verified.code, verified.stderr).toBe(0);
    } finally {
      await proxy.close();
    }
  });

  it('pull resumed twice at once', { timeout: 300_000 }, async () => {
    const target = path.join(environment.dir, 'pulled-twice');
    const proxy = await startRecordingProxy(server.url, { bytesPerSecond: 8 * MiB });
    try {
      const partialDirectory = path.join(target, '.artifact-store-partial');
      const child = spawnCli(['pull', packageId, target, '--url', proxy.url, '--parallel', '1']);
      const result = collect(child);
      await waitFor(() => directorySize(partialDirectory) >= largeSize / 4 || child.exitCode !== null, 'a quarter of large.bin on disk');
      child.kill('SIGKILL');
      expect((await result).code).toBeNull();

      // Both runs find the partial file; the lock lets exactly one of them write it.
      const runs = await Promise.all([runCli(['pull', packageId, target, '--url', proxy.url]), runCli(['pull', packageId, target, '--url', proxy.url])]);
      const succeeded = runs.filter((run) => run.code === 0);
      const rejected = runs.filter((run) => run.code !== 0);
      expect(succeeded, runs.map((run) => run.stderr).join('\n')).toHaveLength(1);
      expect(rejected).toHaveLength(1);
      expect(rejected[0].code).toBe(1);
      expect(rejected[0].stderr).toMatch(/A pull into .*pulled-twice is already running as process \d+/);
      expect(rejected[0].stderr).not.toMatch(/\n\s+at /);

      expect(fs.statSync(path.join(target, 'large.bin')).size).toBe(largeSize);
      expect(toolDigest('sha256sum', path.join(target, 'large.bin'))).toBe(toolDigest('sha256sum', path.join(source, 'large.bin')));
      expect(fs.existsSync(partialDirectory)).toBe(false);
      const verified = await runCli(['verify', target]);
      expect(verified.code, verified.stderr).toBe(0);
    } finally {
      await proxy.close();
    }
  });

  it('pull rejects a partial file grown by another writer', { timeout: 300_000 }, async () => {
    const target = path.join(environment.dir, 'pulled-grown');
    const proxy = await startRecordingProxy(server.url, { bytesPerSecond: 8 * MiB });
    try {
      const partialDirectory = path.join(target, '.artifact-store-partial');
      const partialFiles = () => (fs.existsSync(partialDirectory) ? fs.readdirSync(partialDirectory).filter((name) => name !== 'pull.lock') : []);
      const child = spawnCli(['pull', packageId, target, '--url', proxy.url, '--parallel', '1']);
      const result = collect(child);
      await waitFor(() => directorySize(partialDirectory) >= largeSize / 4 || child.exitCode !== null, 'a quarter of large.bin on disk');
      // Another writer appends to the partial file; the streamed bytes still match the manifest.
      expect(partialFiles()).toHaveLength(1);
      fs.appendFileSync(path.join(partialDirectory, partialFiles()[0]), Buffer.alloc(largeSize));

      const grown = await result;
      expect(grown.code, grown.stderr).toBe(3);
      expect(grown.stderr).toContain('large.bin failed verification: size on disk');
      expect(fs.existsSync(path.join(target, 'large.bin'))).toBe(false);
      expect(partialFiles()).toEqual([]);
    } finally {
      await proxy.close();
    }
  });

  it('pull takes over a lock of a dead process', async () => {
    const target = path.join(environment.dir, 'pulled-stale-lock');
    fs.mkdirSync(path.join(target, '.artifact-store-partial'), { recursive: true });
    // A process id above the kernel's pid_max (4194304 at most) cannot be running.
    fs.writeFileSync(path.join(target, '.artifact-store-partial', 'pull.lock'), '4999999\n');
    const result = await runCli(['pull', packageId, target]);
    expect(result.code, result.stderr).toBe(0);
    expect(fs.existsSync(path.join(target, '.artifact-store-partial'))).toBe(false);
  });

  it('pull into a regular file fails clearly', async () => {
    const target = path.join(environment.dir, 'pull-target-file');
    fs.writeFileSync(target, 'not a directory');
    const result = await runCli(['pull', packageId, target]);
    expect(result.code).toBe(1);
    expect(result.stderr).toContain(`${target} exists and is not a directory`);
  });

  it('pull names the file when the connection drops', { timeout: 300_000 }, async () => {
    const target = path.join(environment.dir, 'pulled-dropped');
    const proxy = await startRecordingProxy(server.url, { bytesPerSecond: 8 * MiB });
    const partialDirectory = path.join(target, '.artifact-store-partial');
    const child = spawnCli(['pull', packageId, target, '--url', proxy.url, '--parallel', '1']);
    const result = collect(child);
    try {
      await waitFor(() => directorySize(partialDirectory) >= largeSize / 4 || child.exitCode !== null, 'a quarter of large.bin on disk');
    } finally {
      await proxy.close();
    }
    const dropped = await result;
    expect(dropped.code).toBe(1);
    expect(dropped.stderr).toContain(`Downloading large.bin from ${proxy.url}/api/v1/files/`);
    expect(dropped.stderr).toContain('Run the same pull again to resume');
    expect(dropped.stderr).not.toMatch(/\n\s+at /);
    expect(fs.readdirSync(partialDirectory)).toHaveLength(1);

    const resumed = await runCli(['pull', packageId, target, '--json']);
    expect(resumed.code, resumed.stderr).toBe(0);
    expect(JSON.parse(resumed.stdout).resumed).toBe(1);
    expect(toolDigest('sha256sum', path.join(target, 'large.bin'))).toBe(toolDigest('sha256sum', path.join(source, 'large.bin')));
  });

  it('pull deletes a download that fails verification', async () => {
    const target = path.join(environment.dir, 'pulled-corrupt');
    const files = (await (await api.get(`/packages/${packageId}/files`)).json()).files;
    const data = files.find((file: any) => file.relative_path === 'docs/nested/data.bin');
    const proxy = await startRecordingProxy(server.url, { corruptResponse: { pathIncludes: `/files/${data.id}/download`, offset: 100_000 } });
    try {
      const result = await runCli(['pull', packageId, target, '--url', proxy.url]);
      expect(result.code).toBe(3);
      expect(result.stderr).toContain('docs/nested/data.bin failed verification');
      expect(fs.existsSync(path.join(target, 'docs/nested/data.bin'))).toBe(false);
      expect(fs.existsSync(path.join(target, '.artifact-store-partial', data.id))).toBe(false);
    } finally {
      await proxy.close();
    }
  });
});

describe('cli errors and operator commands', () => {
  it('usage errors exit 2', async () => {
    const cases = [
      ['push', environment.dir, '--producer', 'ci', '--subject', 's', '--class', 'standard'],
      ['push', environment.dir, '--name', 'n', '--producer', 'ci', '--subject', 's', '--class', 'standard', '--no-such-option'],
      ['pull', 'only-one-argument'],
      ['no-such-command'],
      ['verify'],
      ['events', '--since', 'yesterday'],
    ];
    for (const args of cases) {
      const result = await runCli(args);
      expect(result.code, args.join(' ')).toBe(2);
      expect(result.stderr).not.toMatch(/\n\s+at /);
    }
  });

  it('server problem exits 1 with its detail', async () => {
    const missing = crypto.randomUUID();
    const result = await runCli(['show', missing]);
    expect(result.code).toBe(1);
    expect(result.stderr).toContain('Not found (HTTP 404)');
    expect(result.stderr).toContain(`Package "${missing}" does not exist.`);
    expect(result.stderr).not.toMatch(/\n\s+at /);

    const source = path.join(environment.dir, 'bad-class');
    writeRandomFile(path.join(source, 'x.bin'), 10);
    const badClass = await runCli(['push', source, '--name', 'n', '--producer', 'ci', '--subject', 's', '--class', 'no-such-class']);
    expect(badClass.code).toBe(1);
    expect(badClass.stderr).toContain('Unknown retention class "no-such-class".');
    expect(badClass.stderr).toContain('field retention_class');
  });

  it('help per command exits 0', async () => {
    for (const command of ['push', 'pull', 'verify', 'ls', 'show', 'hold', 'release', 'extend', 'events']) {
      const result = await runCli([command, '--help']);
      expect(result.code, command).toBe(0);
      expect(result.stdout).toContain(`usage: artifact-store ${command}`);
    }
  });

  it('hold, release, extend, ls, show and events', async () => {
    const pkg = await api.createPackage({ name: 'cli-operator' });
    await api.putFile(pkg.id, 'f.txt', 'hello');
    expect((await api.post(`/packages/${pkg.id}/finalize`)).status).toBe(200);

    const hold = await runCli(['hold', pkg.id, '--reason', 'audit A-1']);
    expect(hold.code, hold.stderr).toBe(0);
    const holdId = hold.stdout.trim();
    const showResult = await runCli(['show', pkg.id, '--json']);
    expect(showResult.code, showResult.stderr).toBe(0);
    const details = JSON.parse(showResult.stdout);
    expect(details.retention.active_holds.map((entry: any) => entry.hold_id)).toEqual([holdId]);
    expect(details.files.map((file: any) => file.relative_path)).toEqual(['f.txt']);

    const released = await runCli(['release', pkg.id, holdId, '--reason', 'audit closed']);
    expect(released.code, released.stderr).toBe(0);
    const extended = await runCli(['extend', pkg.id, '--until', '2099-01-01T00:00:00Z', '--reason', 'keep longer', '--json']);
    expect(extended.code, extended.stderr).toBe(0);
    expect(JSON.parse(extended.stdout).current_expires_at).toBe('2099-01-01T00:00:00.000Z');
    const shortened = await runCli(['extend', pkg.id, '--until', '2030-01-01T00:00:00Z', '--reason', 'shorter']);
    expect(shortened.code).toBe(1);
    expect(shortened.stderr).toContain('HTTP 409');

    const listed = await runCli(['ls', '--name', 'cli-operator', '--json']);
    expect(listed.code, listed.stderr).toBe(0);
    expect(JSON.parse(listed.stdout).packages.map((entry: any) => entry.id)).toEqual([pkg.id]);

    const events = await runCli(['events', '--package', pkg.id, '--json']);
    expect(events.code, events.stderr).toBe(0);
    const types = events.stdout.trim().split('\n').map((line) => JSON.parse(line).event_type);
    expect(types).toContain('retention.hold_applied');
    expect(types).toContain('retention.hold_released');

    // --follow prints an event committed while it waits.
    const follower = spawnCli(['events', '--follow', '--package', pkg.id, '--since', String(details.package.last_event_sequence ?? 0)]);
    const output = collect(follower);
    let printed = '';
    follower.stdout!.on('data', (chunk) => (printed += chunk));
    await sleep(1000);
    const second = await runCli(['hold', pkg.id, '--reason', 'second look']);
    expect(second.code, second.stderr).toBe(0);
    await waitFor(() => printed.includes('retention.hold_applied'), 'the followed hold event', 30_000);
    follower.kill('SIGTERM');
    await output;
  });

  it('events --follow retries network errors', { timeout: 120_000 }, async () => {
    const pkg = await api.createPackage({ name: 'cli-follow-retry' });
    const proxy = await startRecordingProxy(server.url);
    const port = Number(new URL(proxy.url).port);
    const follower = spawnCli(['events', '--follow', '--package', pkg.id, '--url', proxy.url]);
    const output = collect(follower);
    let printed = '';
    let logged = '';
    follower.stdout!.on('data', (chunk) => (printed += chunk));
    follower.stderr!.on('data', (chunk) => (logged += chunk));
    let restarted: RecordingProxy | undefined;
    try {
      await waitFor(() => printed.includes('package.created'), 'the existing package.created event');
      // Closing the proxy drops the pending long poll; later attempts find the port closed.
      await proxy.close();
      await waitFor(() => logged.includes('attempt 2') || follower.exitCode !== null, 'a second retry', 30_000);
      expect(follower.exitCode).toBeNull();
      expect(logged).toContain('Retrying in 1 s (attempt 1)');
      expect(logged).toContain('Retrying in 2 s (attempt 2)');

      restarted = await startRecordingProxy(server.url, { port });
      const hold = await runCli(['hold', pkg.id, '--reason', 'after the restart']);
      expect(hold.code, hold.stderr).toBe(0);
      await waitFor(() => printed.includes('retention.hold_applied') || follower.exitCode !== null, 'the hold event after the retries', 60_000);
      expect(printed).toContain('retention.hold_applied');
    } finally {
      follower.kill('SIGTERM');
      await output;
      await restarted?.close();
    }

    // A 4xx response is final.
    const rejected = await runCli(['events', '--follow', '--token', 'not-a-token']);
    expect(rejected.code).toBe(1);
    expect(rejected.stderr).toContain('HTTP 401');
    expect(rejected.stderr).not.toContain('Retrying');
  });
});

describe('cli push against a file size limit', () => {
  let limitedEnvironment: TestEnvironment;
  let limitedServer: TestServer;

  beforeAll(async () => {
    limitedEnvironment = await createTestEnvironment({ MAX_FILE_SIZE_BYTES: '1000000' });
    limitedServer = await startServer(limitedEnvironment);
  });

  afterAll(async () => {
    await limitedServer?.stop();
    await limitedEnvironment?.cleanup();
  });

  it('rejects a too large file before creating the package', async () => {
    const source = path.join(limitedEnvironment.dir, 'too-large');
    writeRandomFile(path.join(source, 'small.bin'), 1000);
    writeRandomFile(path.join(source, 'large.bin'), 2_000_000);
    const result = await runCli(['push', source, '--name', 'cli-too-large', '--producer', 'ci', '--subject', 's', '--class', 'standard'], {
      ARTIFACT_STORE_URL: limitedServer.url,
      ARTIFACT_STORE_TOKEN: limitedEnvironment.adminToken,
    });
    expect(result.code).toBe(1);
    expect(result.stderr).toContain('1 file is larger than the 1000000 bytes the server accepts per file');
    expect(result.stderr).toContain('large.bin: 2000000 bytes');
    const limitedApi = new ApiClient(limitedServer.url, limitedEnvironment.adminToken);
    const packages = (await (await limitedApi.get('/packages?name=cli-too-large')).json()).packages;
    expect(packages).toEqual([]);
  });
});
