import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { mkdir, mkdtemp, open, readFile, readdir, readlink, rm, stat, symlink, utimes, writeFile, type FileHandle } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { fileURLToPath } from 'node:url';
import { blake3 } from '@napi-rs/blake-hash';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { objectKeyForBlake3, type Backend } from '../server/storage/backend';
import { FilesystemBackend } from '../server/storage/filesystem';
import { storeLocalFile } from '../server/storage/store-blob';
import { runBackendConformance } from './support/storage-conformance';

const PROJECT_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const BACKEND_MODULE = path.join(PROJECT_ROOT, 'server/storage/filesystem.ts');

async function makeRoot(): Promise<string> {
  return mkdtemp(path.join(tmpdir(), 'storage-fs-test-'));
}

async function temporaryFileNames(root: string): Promise<string[]> {
  try {
    return (await readdir(path.join(root, 'tmp'))).sort();
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw error;
  }
}

async function writeCommitted(backend: Backend, bytes: Buffer): Promise<{ objectKey: string; created: boolean }> {
  const writer = await backend.createWriter();
  await pipeline(Readable.from([bytes]), writer.stream);
  const objectKey = objectKeyForBlake3(blake3(bytes).toString('hex'));
  return { objectKey, ...(await writer.commit(objectKey)) };
}

/**
 * Records the path of each descriptor passed to FileHandle.sync until `restore`, so a test can check which
 * files and directories were made durable.
 */
async function recordSyncedPaths(): Promise<{ syncedPaths: string[]; restore: () => void }> {
  const probe = await open(tmpdir(), 'r');
  const fileHandlePrototype = Object.getPrototypeOf(probe) as FileHandle;
  await probe.close();
  const originalSync = fileHandlePrototype.sync;
  const syncedPaths: string[] = [];
  const spy = vi.spyOn(fileHandlePrototype, 'sync').mockImplementation(async function (this: FileHandle) {
    syncedPaths.push(await readlink(`/proc/self/fd/${this.fd}`));
    return originalSync.call(this);
  });
  return { syncedPaths, restore: () => spy.mockRestore() };
}

/**
 * Starts a separate Node process that opens a writer on `root`, writes 4 KiB without committing and
 * then idles until killed. Resolves once the bytes are written.
 */
async function startChildWriter(root: string): Promise<ChildProcess> {
  const script = `
    const { FilesystemBackend } = await import(${JSON.stringify(BACKEND_MODULE)});
    const backend = new FilesystemBackend({ id: 'child', root: ${JSON.stringify(root)} });
    const writer = await backend.createWriter();
    writer.stream.write(Buffer.alloc(4096, 7), () => process.stdout.write('ready\\n'));
    setInterval(() => {}, 60_000);
  `;
  const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], {
    cwd: PROJECT_ROOT,
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, LOG_LEVEL: 'silent' },
  });
  let stderr = '';
  child.stderr!.on('data', (chunk: Buffer) => {
    stderr += chunk.toString();
  });
  await new Promise<void>((resolve, reject) => {
    child.stdout!.on('data', (chunk: Buffer) => {
      if (chunk.toString().includes('ready')) resolve();
    });
    child.on('exit', (code) => reject(new Error(`child writer exited with code ${code}: ${stderr}`)));
  });
  return child;
}

async function killAndReap(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = once(child, 'exit');
  child.kill('SIGKILL');
  await exited;
}

runBackendConformance('filesystem', async () => {
  const root = await makeRoot();
  return {
    backend: new FilesystemBackend({ id: 'fs-test', root }),
    cleanup: () => rm(root, { recursive: true, force: true }),
    listTemporaryItems: () => temporaryFileNames(root),
  };
});

describe('FilesystemBackend', () => {
  let root: string;
  let backend: FilesystemBackend;
  const children: ChildProcess[] = [];

  beforeEach(async () => {
    root = await makeRoot();
    backend = new FilesystemBackend({ id: 'fs-test', root });
  });

  afterEach(async () => {
    await Promise.all(children.splice(0).map(killAndReap));
    await rm(root, { recursive: true, force: true });
  });

  it('uses the documented on-disk layout', async () => {
    const bytes = Buffer.from('layout check');
    const hex = blake3(bytes).toString('hex');
    const { objectKey } = await writeCommitted(backend, bytes);
    const filePath = path.join(root, 'blake3', hex.slice(0, 2), hex.slice(2, 4), hex);
    expect(objectKey).toBe(`blake3/${hex.slice(0, 2)}/${hex.slice(2, 4)}/${hex}`);
    expect(backend.pathForKey(objectKey)).toBe(filePath);
    expect(await readFile(filePath, 'utf8')).toBe('layout check');
    expect(await temporaryFileNames(root)).toEqual([]);
    expect(backend.uploadsDirectory).toBe(path.join(root, 'uploads'));
  });

  it('writes queued chunks in order', async () => {
    // Chunks written without waiting queue up behind the first write and reach the file in writev(2)
    // calls, here more buffers in one call than IOV_MAX (1024 on Linux), which libuv splits.
    const chunks = Array.from({ length: 5000 }, (_, index) => randomBytes(1 + (index % 37)));
    const bytes = Buffer.concat(chunks);
    const writer = await backend.createWriter();
    for (const chunk of chunks) writer.stream.write(chunk);
    writer.stream.end();
    const objectKey = objectKeyForBlake3(blake3(bytes).toString('hex'));
    await writer.commit(objectKey);
    expect((await readFile(backend.pathForKey(objectKey))).equals(bytes)).toBe(true);
  });

  it('recreates removed object directories', async () => {
    // The keys share their first directory level, and the backend caches both levels after the first commit.
    const first = `blake3/ab/cd/abcd${'0'.repeat(60)}`;
    const second = `blake3/ab/ef/abef${'0'.repeat(60)}`;
    const third = `blake3/ab/cd/abcd${'1'.repeat(60)}`;
    const commitBytes = async (objectKey: string, bytes: Buffer) => {
      const writer = await backend.createWriter();
      await pipeline(Readable.from([bytes]), writer.stream);
      return writer.commit(objectKey);
    };
    await commitBytes(first, Buffer.from('first'));

    // Another process removes two levels at once, while the cache still lists blake3/ab and blake3/ab/cd.
    await rm(path.join(root, 'blake3', 'ab'), { recursive: true });
    expect(await commitBytes(second, Buffer.from('second'))).toEqual({ created: true });
    expect(await readFile(backend.pathForKey(second), 'utf8')).toBe('second');

    await rm(path.join(root, 'blake3', 'ab'), { recursive: true });
    expect(await commitBytes(third, Buffer.from('third'))).toEqual({ created: true });
    expect(await readFile(backend.pathForKey(third), 'utf8')).toBe('third');
    expect(await temporaryFileNames(root)).toEqual([]);
  });

  it('reports exactly one concurrent commit as created', async () => {
    const bytes = randomBytes(100_000);
    const objectKey = objectKeyForBlake3(blake3(bytes).toString('hex'));
    const writers = await Promise.all(Array.from({ length: 8 }, () => backend.createWriter()));
    await Promise.all(writers.map((writer) => pipeline(Readable.from([bytes]), writer.stream)));
    const results = await Promise.all(writers.map((writer) => writer.commit(objectKey)));
    expect(results.filter((result) => result.created)).toHaveLength(1);
    expect(await temporaryFileNames(root)).toEqual([]);
  });

  it('names temporary files with pid and suffix', async () => {
    const writer = await backend.createWriter();
    const [name] = await temporaryFileNames(root);
    expect(name).toMatch(new RegExp(`^([0-9a-f]{16}|unknown)-${process.pid}-[0-9a-f]{16}-[0-9a-f]{16}\\.partial$`));
    await writer.cancel();
  });

  it('closes file descriptors after reads and writes', async () => {
    const openDescriptors = async () => (await readdir('/proc/self/fd')).length;
    const { objectKey } = await writeCommitted(backend, randomBytes(200_000));
    const before = await openDescriptors();

    for (let index = 0; index < 50; index += 1) {
      const consumed = await backend.read(objectKey, { start: 10, end: 150_000 });
      for await (const chunk of consumed) void chunk;
      const abandoned = await backend.read(objectKey);
      abandoned.destroy();
      await once(abandoned, 'close');
      const cancelled = await backend.createWriter();
      cancelled.stream.write(randomBytes(1000));
      await cancelled.cancel();
      await writeCommitted(backend, randomBytes(1000));
    }

    expect(await openDescriptors()).toBeLessThanOrEqual(before);
  });

  it('closes the temporary file at stream end', async () => {
    // The fsync runs before the close, so a caller that holds locks only during commit does not wait for it there.
    const temporaryDescriptors = async () => {
      const targets = await Promise.all((await readdir('/proc/self/fd')).map((fd) => readlink(`/proc/self/fd/${fd}`).catch(() => '')));
      return targets.filter((target) => target.startsWith(path.join(root, 'tmp') + path.sep));
    };
    const bytes = randomBytes(10_000);
    const writer = await backend.createWriter();
    expect(await temporaryDescriptors()).toHaveLength(1);
    await pipeline(Readable.from([bytes]), writer.stream);
    expect(await temporaryDescriptors()).toEqual([]);
    expect(await temporaryFileNames(root)).toHaveLength(1);

    const objectKey = objectKeyForBlake3(blake3(bytes).toString('hex'));
    expect(await writer.commit(objectKey)).toEqual({ created: true });
    expect((await readFile(backend.pathForKey(objectKey))).equals(bytes)).toBe(true);
    expect(await temporaryFileNames(root)).toEqual([]);
  });

  it('fsyncs the file and then its directory', async () => {
    const { syncedPaths, restore } = await recordSyncedPaths();
    try {
      const bytes = randomBytes(10_000);
      const writer = await backend.createWriter();
      await pipeline(Readable.from([bytes]), writer.stream);
      expect(syncedPaths).toHaveLength(1);
      expect(path.dirname(syncedPaths[0])).toBe(path.join(root, 'tmp'));

      const objectKey = objectKeyForBlake3(blake3(bytes).toString('hex'));
      syncedPaths.length = 0;
      await writer.commit(objectKey);
      expect(syncedPaths).toContain(path.dirname(backend.pathForKey(objectKey)));
    } finally {
      restore();
    }
  });

  it('fsyncs the parents of a root it creates', async () => {
    const createdRoot = path.join(root, 'store', 'blobs');
    const newBackend = new FilesystemBackend({ id: 'fs-new-root', root: createdRoot });
    const { syncedPaths, restore } = await recordSyncedPaths();
    try {
      expect((await writeCommitted(newBackend, randomBytes(1_000))).created).toBe(true);
    } finally {
      restore();
    }
    expect(syncedPaths).toContain(createdRoot);
    expect(syncedPaths).toContain(path.join(root, 'store'));
    expect(syncedPaths).toContain(root);
  });

  it('fsyncs the parents of directories made by another writer', async () => {
    // Another writer made the object's directories and may have died before it fsynced their parents.
    const bytes = randomBytes(1_000);
    const objectKey = objectKeyForBlake3(blake3(bytes).toString('hex'));
    const leafDirectory = path.dirname(backend.pathForKey(objectKey));
    await mkdir(leafDirectory, { recursive: true });
    const { syncedPaths, restore } = await recordSyncedPaths();
    try {
      expect(await writeCommitted(backend, bytes)).toEqual({ objectKey, created: true });
    } finally {
      restore();
    }
    expect(syncedPaths).toContain(path.dirname(leafDirectory));
    expect(syncedPaths).toContain(path.join(root, 'blake3'));
    expect(syncedPaths).toContain(root);
  });

  it('removes an ended writer on cancel', async () => {
    const writer = await backend.createWriter();
    await pipeline(Readable.from([randomBytes(1000)]), writer.stream);
    await writer.cancel();
    expect(await temporaryFileNames(root)).toEqual([]);
  });

  it('reports health failure for an unusable root', async () => {
    const filePath = path.join(root, 'not-a-directory');
    await writeFile(filePath, 'x');
    const health = await new FilesystemBackend({ id: 'broken', root: filePath }).health();
    expect(health.ok).toBe(false);
    expect(health.detail).toMatch(/cannot write to the storage root/);
  });

  describe('recoverTemporaryFiles', () => {
    it('removes the file of a killed process', async () => {
      const child = await startChildWriter(root);
      children.push(child);
      const [name] = await temporaryFileNames(root);
      expect(name).toContain(`-${child.pid}-`);

      await killAndReap(child);
      const removed = await backend.recoverTemporaryFiles();
      expect(removed).toEqual([path.join(root, 'tmp', name)]);
      expect(await temporaryFileNames(root)).toEqual([]);
    });

    it('keeps the file of a live process', async () => {
      const child = await startChildWriter(root);
      children.push(child);
      const [name] = await temporaryFileNames(root);

      expect(await backend.recoverTemporaryFiles()).toEqual([]);
      expect(await temporaryFileNames(root)).toEqual([name]);

      await killAndReap(child);
      expect(await backend.recoverTemporaryFiles()).toEqual([path.join(root, 'tmp', name)]);
    });

    it('keeps open writers of this process', async () => {
      const writer = await backend.createWriter();
      writer.stream.write(randomBytes(100));
      const otherInstance = new FilesystemBackend({ id: 'fs-test-2', root, staleTemporaryFileMs: 0 });
      expect(await otherInstance.recoverTemporaryFiles()).toEqual([]);
      expect(await temporaryFileNames(root)).toHaveLength(1);
      await writer.cancel();
    });

    it('removes foreign files after the stale period', async () => {
      const staleBackend = new FilesystemBackend({ id: 'fs-test', root, staleTemporaryFileMs: 60_000 });
      await mkdir(path.join(root, 'tmp'), { recursive: true });
      const staleName = `0123456789abcdef-4242-${'a'.repeat(16)}-${'b'.repeat(16)}.partial`;
      const freshName = `0123456789abcdef-4242-${'c'.repeat(16)}-${'d'.repeat(16)}.partial`;
      await writeFile(path.join(root, 'tmp', staleName), 'stale');
      await writeFile(path.join(root, 'tmp', freshName), 'fresh');
      const twoMinutesAgo = new Date(Date.now() - 120_000);
      await utimes(path.join(root, 'tmp', staleName), twoMinutesAgo, twoMinutesAgo);

      expect(await staleBackend.recoverTemporaryFiles()).toEqual([path.join(root, 'tmp', staleName)]);
      expect(await temporaryFileNames(root)).toEqual([freshName]);
    });

    it('leaves unrecognised files alone', async () => {
      await mkdir(path.join(root, 'tmp'), { recursive: true });
      const oldDate = new Date(Date.now() - 10 * 24 * 3600 * 1000);
      await writeFile(path.join(root, 'tmp', 'notes.txt'), 'keep');
      await utimes(path.join(root, 'tmp', 'notes.txt'), oldDate, oldDate);
      expect(await backend.recoverTemporaryFiles()).toEqual([]);
      expect(await temporaryFileNames(root)).toEqual(['notes.txt']);
    });

    it('returns nothing for a fresh root', async () => {
      expect(await backend.recoverTemporaryFiles()).toEqual([]);
    });
  });

  describe('adoptFile', () => {
    async function stage(bytes: Buffer, name: string): Promise<string> {
      await mkdir(backend.uploadsDirectory, { recursive: true });
      const localPath = path.join(backend.uploadsDirectory, name);
      await writeFile(localPath, bytes);
      return localPath;
    }

    it('moves a staged file into place', async () => {
      const bytes = randomBytes(70_000);
      const objectKey = objectKeyForBlake3(blake3(bytes).toString('hex'));
      const localPath = await stage(bytes, 'upload-1');
      expect(await backend.adoptFile(localPath, objectKey)).toEqual({ created: true });
      await expect(stat(localPath)).rejects.toMatchObject({ code: 'ENOENT' });
      expect((await readFile(backend.pathForKey(objectKey))).equals(bytes)).toBe(true);
    });

    it('discards a duplicate staged file', async () => {
      const bytes = randomBytes(70_000);
      const objectKey = objectKeyForBlake3(blake3(bytes).toString('hex'));
      await backend.adoptFile(await stage(bytes, 'upload-1'), objectKey);
      const duplicatePath = await stage(bytes, 'upload-2');
      expect(await backend.adoptFile(duplicatePath, objectKey)).toEqual({ created: false });
      await expect(stat(duplicatePath)).rejects.toMatchObject({ code: 'ENOENT' });
    });

    it('rejects a file inside the object tree', async () => {
      const { objectKey } = await writeCommitted(backend, Buffer.from('already stored'));
      await expect(backend.adoptFile(backend.pathForKey(objectKey), objectKey)).rejects.toThrow(/outside the object tree/);
      expect(await readFile(backend.pathForKey(objectKey), 'utf8')).toBe('already stored');
    });

    it('rejects a symbolic link', async () => {
      const bytes = Buffer.from('link target');
      const targetPath = await stage(bytes, 'real-file');
      const linkPath = path.join(backend.uploadsDirectory, 'link');
      await symlink(targetPath, linkPath);
      const objectKey = objectKeyForBlake3(blake3(bytes).toString('hex'));
      await expect(backend.adoptFile(linkPath, objectKey)).rejects.toThrow(/regular file/);
      expect(await backend.stat(objectKey)).toBeNull();
    });

    it('rejects an object reached through a symlinked root', async () => {
      const { objectKey } = await writeCommitted(backend, Buffer.from('stored once'));
      const aliasRoot = path.join(root, 'alias');
      await symlink(root, aliasRoot);
      const aliasBackend = new FilesystemBackend({ id: 'alias', root: aliasRoot });
      await expect(aliasBackend.adoptFile(backend.pathForKey(objectKey), objectKey)).rejects.toThrow(
        /outside the object tree/,
      );
      expect(await readFile(backend.pathForKey(objectKey), 'utf8')).toBe('stored once');
    });

    it('rejects a missing local file', async () => {
      const objectKey = objectKeyForBlake3(blake3(Buffer.from('x')).toString('hex'));
      await expect(backend.adoptFile(path.join(root, 'missing'), objectKey)).rejects.toMatchObject({ code: 'ENOENT' });
    });
  });

  describe('storeLocalFile', () => {
    it('digests and adopts a local file', async () => {
      const bytes = randomBytes(2 * 1024 * 1024 + 9);
      await mkdir(backend.uploadsDirectory, { recursive: true });
      const localPath = path.join(backend.uploadsDirectory, 'finished-upload');
      await writeFile(localPath, bytes);

      const stored = await storeLocalFile(backend, localPath);
      const hex = blake3(bytes).toString('hex');
      expect(stored.contentAddress).toBe(`blake3:${hex}`);
      expect(stored.sizeBytes).toBe(bytes.length);
      expect(stored.created).toBe(true);
      await expect(stat(localPath)).rejects.toMatchObject({ code: 'ENOENT' });
      expect((await readFile(backend.pathForKey(stored.objectKey))).equals(bytes)).toBe(true);
    });

    it('copies into a backend without adoptFile', async () => {
      const withoutAdopt: Backend = {
        id: backend.id,
        kind: backend.kind,
        retrievalTier: backend.retrievalTier,
        createWriter: () => backend.createWriter(),
        read: (key, range) => backend.read(key, range),
        stat: (key) => backend.stat(key),
        delete: (key) => backend.delete(key),
        health: () => backend.health(),
        recoverTemporaryFiles: () => backend.recoverTemporaryFiles(),
      };
      const bytes = randomBytes(300_000);
      const localPath = path.join(root, 'local-file');
      await writeFile(localPath, bytes);

      const stored = await storeLocalFile(withoutAdopt, localPath);
      expect(stored.blake3Hex).toBe(blake3(bytes).toString('hex'));
      await expect(stat(localPath)).rejects.toMatchObject({ code: 'ENOENT' });
      expect((await readFile(backend.pathForKey(stored.objectKey))).equals(bytes)).toBe(true);
    });
  });
});
