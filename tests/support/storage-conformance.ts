import { randomBytes, randomFillSync } from 'node:crypto';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { blake3 } from '@napi-rs/blake-hash';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { DualDigest, digestStream } from '../../server/digest/index';
import { PayloadTooLargeError } from '../../server/errors';
import {
  BlobNotFoundError,
  InvalidObjectKeyError,
  ObjectSizeMismatchError,
  objectKeyForBlake3,
  type Backend,
  type ByteRange,
} from '../../server/storage/backend';
import { storeStream } from '../../server/storage/store-blob';

export interface BackendFixture {
  backend: Backend;
  /** Removes everything the fixture created. */
  cleanup(): Promise<void>;
  /** Lists the backend's uncommitted leftovers (temporary files, pending multipart uploads), if it can. */
  listTemporaryItems?(): Promise<string[]>;
  /** False for a backend that cannot know its capacity (S3), whose health reports null free and total bytes. */
  reportsCapacity?: boolean;
}

const INVALID_KEYS = [
  '../x',
  '/abs',
  'a\\b',
  'x\0y',
  '',
  'blake3/../../etc/passwd',
  `blake3/ab/cd/${'ab'.repeat(32)}`,
  `blake3/AB/AB/${'AB'.repeat(32)}`,
  `blake3/ab/ab/${'ab'.repeat(32)}/`,
  `/blake3/ab/ab/${'ab'.repeat(32)}`,
  `blake3\\ab\\ab\\${'ab'.repeat(32)}`,
  `blake3/ab/ab/${'ab'.repeat(31)}a\0`,
  `tmp/ab/ab/${'ab'.repeat(32)}`,
  `uploads/${'ab'.repeat(32)}`,
];

function keyFor(bytes: Uint8Array): string {
  return objectKeyForBlake3(blake3(Buffer.from(bytes)).toString('hex'));
}

function chunksOf(bytes: Buffer, size: number): Buffer[] {
  const chunks: Buffer[] = [];
  for (let offset = 0; offset < bytes.length; offset += size) chunks.push(bytes.subarray(offset, offset + size));
  return chunks;
}

/** Writes `bytes` through a new writer and commits them at their content address. */
async function writeObject(backend: Backend, bytes: Buffer): Promise<{ objectKey: string; created: boolean }> {
  const writer = await backend.createWriter();
  await pipeline(Readable.from(chunksOf(bytes, 64 * 1024)), writer.stream);
  const objectKey = keyFor(bytes);
  const { created } = await writer.commit(objectKey);
  return { objectKey, created };
}

async function readAll(backend: Backend, objectKey: string, range?: ByteRange, expectedSizeBytes?: number): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of await backend.read(objectKey, range, expectedSizeBytes)) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

async function listKeys(backend: Backend): Promise<string[]> {
  if (!backend.list) return [];
  const keys: string[] = [];
  for await (const entry of backend.list()) keys.push(entry.objectKey);
  return keys.sort();
}

/** Creates a source that emits `chunkCount` random chunks of 16 KiB and then fails with `error`. */
function failingSource(chunkCount: number, error: Error): Readable {
  let sent = 0;
  return new Readable({
    read() {
      if (sent === chunkCount) {
        this.destroy(error);
        return;
      }
      sent += 1;
      this.push(randomBytes(16 * 1024));
    },
  });
}

/**
 * Returns V8's gc function. Without it, freed 64 KiB chunks pile up as external memory until V8 collects
 * them. In two runs on Node 20.20 (Linux x64) that added 35 to 38 MiB of RSS over a 64 MiB stream,
 * against about 6 MiB with a collection every 4 MiB, so real buffering would be hard to see.
 */
function exposeGarbageCollector(): () => void {
  setFlagsFromString('--expose-gc');
  return runInNewContext('gc') as () => void;
}

/**
 * Registers the storage backend contract as vitest tests. `makeBackend` is called before every test and
 * must return an empty backend; its cleanup runs after the test.
 */
export function runBackendConformance(name: string, makeBackend: () => Promise<BackendFixture>): void {
  describe(`${name} backend conformance`, () => {
    let fixture: BackendFixture;
    let backend: Backend;

    async function expectNoLeftovers(): Promise<void> {
      expect(await listKeys(backend)).toEqual([]);
      if (fixture.listTemporaryItems) expect(await fixture.listTemporaryItems()).toEqual([]);
    }

    beforeEach(async () => {
      fixture = await makeBackend();
      backend = fixture.backend;
    });

    afterEach(async () => {
      await fixture.cleanup();
    });

    it('reads back committed bytes', async () => {
      for (const size of [0, 1, 1024 * 1024 + 3]) {
        const bytes = randomBytes(size);
        const { objectKey, created } = await writeObject(backend, bytes);
        expect(created, `size ${size}`).toBe(true);
        expect((await readAll(backend, objectKey)).equals(bytes), `size ${size}`).toBe(true);
      }
      if (fixture.listTemporaryItems) expect(await fixture.listTemporaryItems()).toEqual([]);
    });

    it('serves ranged reads', async () => {
      const bytes = randomBytes(300_000);
      const { objectKey } = await writeObject(backend, bytes);
      const cases: Array<[string, ByteRange]> = [
        ['first byte', { start: 0, end: 0 }],
        ['last byte', { start: bytes.length - 1, end: bytes.length - 1 }],
        ['middle', { start: 100_000, end: 199_999 }],
        ['whole object', { start: 0, end: bytes.length - 1 }],
      ];
      for (const [label, range] of cases) {
        const read = await readAll(backend, objectKey, range);
        expect(read.equals(bytes.subarray(range.start, range.end + 1)), label).toBe(true);
      }
    });

    it('rejects a range past the end', async () => {
      const { objectKey } = await writeObject(backend, randomBytes(10));
      await expect(backend.read(objectKey, { start: 5, end: 10 })).rejects.toThrow(RangeError);
      await expect(backend.read(objectKey, { start: 5, end: 4 })).rejects.toThrow(RangeError);
    });

    it('rejects an object of another size than expected', async () => {
      const bytes = randomBytes(20_000);
      const { objectKey } = await writeObject(backend, bytes);
      for (const range of [undefined, { start: 0, end: 99 }]) {
        const read = backend.read(objectKey, range, bytes.length + 1);
        await expect(read).rejects.toBeInstanceOf(ObjectSizeMismatchError);
        await expect(read).rejects.toMatchObject({ objectKey, backendId: backend.id, sizeBytes: bytes.length, expectedSizeBytes: bytes.length + 1 });
      }
      expect((await readAll(backend, objectKey, undefined, bytes.length)).equals(bytes)).toBe(true);
      expect((await readAll(backend, objectKey, { start: 0, end: 99 }, bytes.length)).equals(bytes.subarray(0, 100))).toBe(true);
    });

    it('stats committed and missing objects', async () => {
      const bytes = randomBytes(12_345);
      const before = Date.now();
      const { objectKey } = await writeObject(backend, bytes);
      const stats = await backend.stat(objectKey);
      expect(stats?.sizeBytes).toBe(12_345);
      expect(stats?.modifiedAt).toBeInstanceOf(Date);
      expect(Math.abs(stats!.modifiedAt.getTime() - before)).toBeLessThan(60_000);
      expect(await backend.stat(keyFor(randomBytes(8)))).toBeNull();
    });

    it('reports a missing object as BlobNotFoundError', async () => {
      const objectKey = keyFor(randomBytes(8));
      const read = backend.read(objectKey);
      await expect(read).rejects.toBeInstanceOf(BlobNotFoundError);
      await expect(read).rejects.toMatchObject({ status: 500, objectKey, backendId: backend.id });
    });

    it('stores identical content once', async () => {
      const bytes = randomBytes(50_000);
      const first = await writeObject(backend, bytes);
      const second = await writeObject(backend, bytes);
      expect(first.created).toBe(true);
      expect(second.created).toBe(false);
      expect(second.objectKey).toBe(first.objectKey);
      if (backend.list) expect(await listKeys(backend)).toEqual([first.objectKey]);
      expect((await readAll(backend, first.objectKey)).equals(bytes)).toBe(true);
      if (fixture.listTemporaryItems) expect(await fixture.listTemporaryItems()).toEqual([]);
    });

    it('commits the same content concurrently', async () => {
      const bytes = randomBytes(200_000);
      const objectKey = keyFor(bytes);
      const writers = await Promise.all([backend.createWriter(), backend.createWriter(), backend.createWriter()]);
      await Promise.all(writers.map((writer) => pipeline(Readable.from(chunksOf(bytes, 8192)), writer.stream)));
      const results = await Promise.allSettled(writers.map((writer) => writer.commit(objectKey)));
      for (const result of results) expect(result.status).toBe('fulfilled');
      const createdCount = results.filter((result) => result.status === 'fulfilled' && result.value.created).length;
      expect(createdCount).toBeGreaterThanOrEqual(1);
      expect((await readAll(backend, objectKey)).equals(bytes)).toBe(true);
      if (backend.list) expect(await listKeys(backend)).toEqual([objectKey]);
      if (fixture.listTemporaryItems) expect(await fixture.listTemporaryItems()).toEqual([]);
    });

    it('leaves nothing after cancel', async () => {
      const bytes = randomBytes(100_000);
      const writer = await backend.createWriter();
      await pipeline(Readable.from(chunksOf(bytes, 4096)), writer.stream);
      await writer.cancel();
      await writer.cancel();
      expect(await backend.stat(keyFor(bytes))).toBeNull();
      await expectNoLeftovers();
      await expect(writer.commit(keyFor(bytes))).rejects.toThrow(/discarded/);
    });

    it('cancels a writer mid-stream', async () => {
      const writer = await backend.createWriter();
      writer.stream.write(randomBytes(10_000));
      await writer.cancel();
      await expectNoLeftovers();
    });

    it('cleans up after a failed commit', async () => {
      const writer = await backend.createWriter();
      await pipeline(Readable.from([randomBytes(1000)]), writer.stream);
      await expect(writer.commit('../escape')).rejects.toBeInstanceOf(InvalidObjectKeyError);
      await writer.cancel();
      await expectNoLeftovers();
    });

    it('keeps a committed object on a later cancel', async () => {
      const bytes = randomBytes(1000);
      const writer = await backend.createWriter();
      await pipeline(Readable.from([bytes]), writer.stream);
      await writer.commit(keyFor(bytes));
      await writer.cancel();
      expect((await backend.stat(keyFor(bytes)))?.sizeBytes).toBe(1000);
    });

    it('deletes idempotently', async () => {
      const { objectKey } = await writeObject(backend, randomBytes(1000));
      await backend.delete(objectKey);
      expect(await backend.stat(objectKey)).toBeNull();
      await expect(backend.delete(objectKey)).resolves.toBeUndefined();
      await expect(backend.delete(keyFor(randomBytes(8)))).resolves.toBeUndefined();
      await expect(backend.read(objectKey)).rejects.toBeInstanceOf(BlobNotFoundError);
    });

    it('reports health with capacity numbers', async () => {
      const health = await backend.health();
      expect(health.ok).toBe(true);
      if (fixture.reportsCapacity === false) {
        expect(health.freeBytes).toBeNull();
        expect(health.totalBytes).toBeNull();
        await expectNoLeftovers();
        return;
      }
      expect(health.freeBytes).toBeTypeOf('number');
      expect(health.totalBytes).toBeTypeOf('number');
      expect(health.freeBytes!).toBeGreaterThan(0);
      expect(health.totalBytes!).toBeGreaterThanOrEqual(health.freeBytes!);
      await expectNoLeftovers();
    });

    it('rejects invalid object keys', async () => {
      for (const key of INVALID_KEYS) {
        const label = JSON.stringify(key);
        await expect(backend.read(key), label).rejects.toBeInstanceOf(InvalidObjectKeyError);
        await expect(backend.stat(key), label).rejects.toBeInstanceOf(InvalidObjectKeyError);
        await expect(backend.delete(key), label).rejects.toBeInstanceOf(InvalidObjectKeyError);
        const writer = await backend.createWriter();
        writer.stream.end(Buffer.from('x'));
        await expect(writer.commit(key), label).rejects.toBeInstanceOf(InvalidObjectKeyError);
        await writer.cancel();
      }
      await expectNoLeftovers();
    });

    it('lists committed objects only', async () => {
      if (!backend.list) return;
      const first = await writeObject(backend, randomBytes(111));
      const second = await writeObject(backend, randomBytes(222));
      const pending = await backend.createWriter();
      await new Promise<void>((resolve, reject) => pending.stream.write(randomBytes(333), (error) => (error ? reject(error) : resolve())));

      const entries = [];
      for await (const entry of backend.list()) entries.push(entry);
      entries.sort((a, b) => a.sizeBytes - b.sizeBytes);
      expect(entries.map((entry) => entry.objectKey)).toEqual([first.objectKey, second.objectKey]);
      expect(entries.map((entry) => entry.sizeBytes)).toEqual([111, 222]);
      for (const entry of entries) expect(entry.modifiedAt).toBeInstanceOf(Date);
      await pending.cancel();
    });

    it('stores a stream with its digests', async () => {
      const bytes = randomBytes(3 * 1024 * 1024 + 1);
      const stored = await storeStream(backend, Readable.from(chunksOf(bytes, 100_000)), { maxBytes: bytes.length });
      const expected = new DualDigest();
      expected.update(bytes);
      const { blake3Hex, sha256Hex } = expected.finish();
      expect(stored).toEqual({
        backendId: backend.id,
        objectKey: objectKeyForBlake3(blake3Hex),
        contentAddress: `blake3:${blake3Hex}`,
        blake3Hex,
        sha256Hex,
        sizeBytes: bytes.length,
        created: true,
      });
      expect((await readAll(backend, stored.objectKey)).equals(bytes)).toBe(true);
    });

    it('leaves nothing when the source fails', async () => {
      const sourceError = new Error('client went away');
      await expect(storeStream(backend, failingSource(20, sourceError), { maxBytes: 1e9 })).rejects.toBe(sourceError);
      await expectNoLeftovers();
    });

    it('leaves nothing past maxBytes', async () => {
      const source = Readable.from(chunksOf(randomBytes(100_000), 10_000));
      await expect(storeStream(backend, source, { maxBytes: 99_999 })).rejects.toBeInstanceOf(PayloadTooLargeError);
      await expectNoLeftovers();
    });

    it('leaves nothing after an abort signal', async () => {
      const controller = new AbortController();
      let sent = 0;
      const source = new Readable({
        read() {
          sent += 1;
          if (sent === 10) controller.abort();
          this.push(randomBytes(16 * 1024));
        },
      });
      await expect(storeStream(backend, source, { maxBytes: 1e9, signal: controller.signal })).rejects.toMatchObject({
        name: 'AbortError',
      });
      await expectNoLeftovers();
    });

    it('streams 64 MiB without buffering it', async () => {
      const totalBytes = 64 * 1024 * 1024;
      const chunkBytes = 64 * 1024;
      const collectGarbage = exposeGarbageCollector();
      const expected = new DualDigest();
      async function* randomChunks() {
        for (let sent = 0; sent < totalBytes; sent += chunkBytes) {
          if (sent % (4 * 1024 * 1024) === 0) collectGarbage();
          const chunk = randomFillSync(Buffer.allocUnsafe(chunkBytes));
          expected.update(chunk);
          yield chunk;
        }
      }

      collectGarbage();
      const baselineRss = process.memoryUsage.rss();
      let peakRss = baselineRss;
      const sampler = setInterval(() => {
        peakRss = Math.max(peakRss, process.memoryUsage.rss());
      }, 5);
      let stored;
      try {
        stored = await storeStream(backend, randomChunks(), { maxBytes: totalBytes });
      } finally {
        clearInterval(sampler);
      }
      peakRss = Math.max(peakRss, process.memoryUsage.rss());

      expect(stored.sizeBytes).toBe(totalBytes);
      expect(stored.blake3Hex).toBe(expected.finish().blake3Hex);
      expect(peakRss - baselineRss, 'RSS growth in bytes').toBeLessThan(48 * 1024 * 1024);
      const readBack = await digestStream(await backend.read(stored.objectKey));
      expect(readBack.blake3Hex).toBe(stored.blake3Hex);
      expect(readBack.sizeBytes).toBe(totalBytes);
    });
  });
}
