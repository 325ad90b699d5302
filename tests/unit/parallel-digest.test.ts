import { execFileSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { blake3 } from '@napi-rs/blake-hash';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  addFileBytes,
  createDigestTransform,
  digestFile,
  digestStream,
  INLINE_DIGEST_MAX_BYTES,
  ParallelDigest,
} from '../../server/digest/index';
import { crashSha256WorkersForTest, sha256PoolStats, SLICE_BYTES } from '../../server/digest/sha256-worker';

const MiB = 1024 * 1024;
const sha256Hex = (bytes: Uint8Array) => createHash('sha256').update(bytes).digest('hex');
const blake3Hex = (bytes: Uint8Array) => blake3(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength)).toString('hex');

/** Sizes around the inline limit, the slice size and the number of slices a digest may queue. */
const BOUNDARY_SIZES = [
  0,
  1,
  4096,
  INLINE_DIGEST_MAX_BYTES - 1,
  INLINE_DIGEST_MAX_BYTES,
  INLINE_DIGEST_MAX_BYTES + 1,
  SLICE_BYTES - 1,
  SLICE_BYTES,
  SLICE_BYTES + 1,
  4 * SLICE_BYTES,
  5 * SLICE_BYTES + 7,
];

function discard(): Writable {
  return new Writable({
    write(_chunk, _encoding, callback) {
      callback();
    },
  });
}

/** Splits `bytes` into views of the given lengths, repeated until the input is used up. */
function splitCycling(bytes: Buffer, lengths: number[]): Buffer[] {
  const pieces: Buffer[] = [];
  for (let offset = 0, index = 0; offset < bytes.length; index += 1) {
    const length = lengths[index % lengths.length];
    pieces.push(bytes.subarray(offset, offset + length));
    offset += length;
  }
  return pieces;
}

function b3sumOf(filePath: string): string | undefined {
  try {
    return execFileSync('b3sum', ['--no-names', filePath], { encoding: 'utf8' }).trim();
  } catch {
    return undefined;
  }
}

let directory: string;

beforeAll(async () => {
  directory = await mkdtemp(path.join(tmpdir(), 'parallel-digest-test-'));
});

afterAll(async () => {
  await rm(directory, { recursive: true, force: true });
});

describe('ParallelDigest boundary sizes', () => {
  const data = randomBytes(BOUNDARY_SIZES.at(-1)!);

  it.each(BOUNDARY_SIZES)('update of %i bytes in one call', async (size) => {
    const input = data.subarray(0, size);
    const digest = new ParallelDigest();
    await digest.update(input);
    const result = await digest.finish();
    expect(result.blake3Hex).toBe(blake3Hex(input));
    expect(result.sha256Hex).toBe(sha256Hex(input));
    expect(result.sizeBytes).toBe(size);
  });

  it.each(BOUNDARY_SIZES)('digestFile of %i bytes', async (size) => {
    const input = data.subarray(0, size);
    const filePath = path.join(directory, `boundary-${size}.bin`);
    await writeFile(filePath, input);
    const result = await digestFile(filePath);
    expect(result.blake3Hex).toBe(blake3Hex(input));
    expect(result.sha256Hex).toBe(sha256Hex(input));
    expect(result.sizeBytes).toBe(size);
  });

  it('keeps a 4 KiB input off the worker', async () => {
    const before = sha256PoolStats().jobs;
    const digest = new ParallelDigest();
    await digest.update(data.subarray(0, 4096));
    expect(sha256PoolStats().jobs).toBe(before);
    await digest.finish();
  });

  it('gives the same digest for 1-byte pieces across the inline limit', async () => {
    const input = data.subarray(0, INLINE_DIGEST_MAX_BYTES + 4096);
    const digest = new ParallelDigest();
    for (let offset = 0; offset < INLINE_DIGEST_MAX_BYTES - 4096; offset += 4096) await digest.update(input.subarray(offset, offset + 4096));
    for (let offset = INLINE_DIGEST_MAX_BYTES - 4096; offset < input.length; offset += 1) await digest.update(input.subarray(offset, offset + 1));
    const result = await digest.finish();
    expect(result.blake3Hex).toBe(blake3Hex(input));
    expect(result.sha256Hex).toBe(sha256Hex(input));
  });
});

describe('ParallelDigest 100 MiB stream', () => {
  it('matches node:crypto and b3sum for odd chunk sizes', async () => {
    const data = randomBytes(100 * MiB);
    const filePath = path.join(directory, 'stream-100mib.bin');
    await writeFile(filePath, data);
    const transform = createDigestTransform();
    const chunks = splitCycling(data, [65_521, 1, 3 * MiB + 5, 4093, SLICE_BYTES - 1, 777_777]);

    await pipeline(Readable.from(chunks), transform, discard());

    expect(transform.result().sha256Hex).toBe(sha256Hex(data));
    expect(transform.result().blake3Hex).toBe(b3sumOf(filePath) ?? blake3Hex(data));
    expect(transform.result().sizeBytes).toBe(data.length);
    expect((await digestFile(filePath)).sha256Hex).toBe(sha256Hex(data));
  });
});

describe('ParallelDigest failures', () => {
  it('frees the worker job when the source errors mid-stream', async () => {
    const before = sha256PoolStats().jobs;
    async function* failing() {
      yield randomBytes(3 * MiB);
      yield randomBytes(2 * MiB);
      throw new Error('source failed');
    }

    await expect(pipeline(Readable.from(failing()), createDigestTransform(), discard())).rejects.toThrow('source failed');
    expect(sha256PoolStats().jobs).toBe(before);

    await expect(digestStream(failing())).rejects.toThrow('source failed');
    expect(sha256PoolStats().jobs).toBe(before);
  });

  it('frees the worker job when the sink errors', async () => {
    const before = sha256PoolStats().jobs;
    const sink = new Writable({
      write(_chunk, _encoding, callback) {
        callback(new Error('disk full'));
      },
    });
    await expect(pipeline(Readable.from([randomBytes(2 * MiB), randomBytes(2 * MiB)]), createDigestTransform(), sink)).rejects.toThrow('disk full');
    expect(sha256PoolStats().jobs).toBe(before);
  });

  it('rejects finish instead of hanging when the worker crashes', async () => {
    const digest = new ParallelDigest();
    await digest.update(randomBytes(2 * MiB));
    crashSha256WorkersForTest();

    await expect(digest.finish()).rejects.toThrow(/worker thread/);
    expect(digest.failed).toBe(true);

    const input = randomBytes(2 * MiB);
    const next = new ParallelDigest();
    await next.update(input);
    expect((await next.finish()).sha256Hex).toBe(sha256Hex(input));
  });

  it('rejects update after dispose and frees the job', async () => {
    const before = sha256PoolStats().jobs;
    const digest = new ParallelDigest();
    await digest.update(randomBytes(2 * MiB));
    expect(sha256PoolStats().jobs).toBe(before + 1);
    digest.dispose();
    expect(sha256PoolStats().jobs).toBe(before);
    await expect(digest.update(Buffer.from('x'))).rejects.toThrow(/disposed/);
    await expect(digest.finish()).rejects.toThrow(/disposed/);
  });

  it('rejects a second update while one is pending', async () => {
    const digest = new ParallelDigest();
    const first = digest.update(randomBytes(8 * MiB));
    await expect(digest.update(Buffer.from('x'))).rejects.toThrow(/another update/);
    await first;
    digest.dispose();
  });

  it('rejects update after finish', async () => {
    const digest = new ParallelDigest();
    await digest.finish();
    await expect(digest.update(Buffer.from('x'))).rejects.toThrow(/after finish/);
  });
});

describe('ParallelDigest kept and rebuilt state', () => {
  const data = randomBytes(6 * MiB + 123);
  const expected = { blake3Hex: blake3Hex(data), sha256Hex: sha256Hex(data), sizeBytes: data.length };
  const offsets = [1, 4096, INLINE_DIGEST_MAX_BYTES, INLINE_DIGEST_MAX_BYTES + 1, SLICE_BYTES, 2 * SLICE_BYTES + 3, data.length - 1];

  it.each(offsets)('kept state at %i matches one pass', async (offset) => {
    const digest = new ParallelDigest();
    for (const piece of splitCycling(data.subarray(0, offset), [65_536, 9])) await digest.update(piece);
    digest.flush();
    expect(digest.failed).toBe(false);
    expect(digest.bytes).toBe(offset);

    for (const piece of splitCycling(data.subarray(offset), [1_000_003])) await digest.update(piece);
    expect(await digest.finish()).toEqual(expected);
  });

  it('finished state returns its result again', async () => {
    const digest = new ParallelDigest();
    await digest.update(data);
    const first = await digest.finish();
    expect(digest.failed).toBe(false);
    expect(await digest.finish()).toEqual(first);
    expect(first).toEqual(expected);
  });

  it.each(offsets)('rebuilt state at %i matches one pass', async (offset) => {
    const filePath = path.join(directory, 'rebuilt.bin');
    await writeFile(filePath, data);
    const digest = new ParallelDigest();
    await addFileBytes(digest, filePath, offset);
    expect(digest.bytes).toBe(offset);

    await digest.update(data.subarray(offset));
    expect(await digest.finish()).toEqual(expected);
  });
});
