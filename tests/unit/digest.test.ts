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
  DualDigest,
  createDigestTransform,
  digestFile,
  digestStream,
} from '../../server/digest/index';
import { PayloadTooLargeError } from '../../server/errors';

const BLAKE3_EMPTY = 'af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262';
const BLAKE3_ABC = '6437b3ac38465133ffb63b75273a8db548c558465d79db03fd359c6cd5bd9d85';
const SHA256_EMPTY = 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855';
const SHA256_ABC = 'ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad';

function digestOf(bytes: Uint8Array) {
  const digest = new DualDigest();
  digest.update(bytes);
  return digest.finish();
}

/** Splits `bytes` into pieces of random length between 0 and maxPiece bytes, as views on the same memory. */
function splitRandomly(bytes: Buffer, maxPiece: number): Buffer[] {
  const pieces: Buffer[] = [];
  let offset = 0;
  while (offset < bytes.length) {
    const length = Math.floor(Math.random() * (maxPiece + 1));
    pieces.push(bytes.subarray(offset, offset + length));
    offset += length;
  }
  return pieces;
}

function collectInto(chunks: Buffer[]): Writable {
  return new Writable({
    write(chunk: Buffer, _encoding, callback) {
      chunks.push(chunk);
      callback();
    },
  });
}

function commandExists(command: string): boolean {
  try {
    execFileSync('sh', ['-c', `command -v ${command}`], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

describe('DualDigest known vectors', () => {
  it('hashes the empty input', () => {
    const result = digestOf(new Uint8Array(0));
    expect(result.blake3Hex).toBe(BLAKE3_EMPTY);
    expect(result.sha256Hex).toBe(SHA256_EMPTY);
    expect(result.sizeBytes).toBe(0);
  });

  it('hashes "abc"', () => {
    const result = digestOf(Buffer.from('abc'));
    expect(result.blake3Hex).toBe(BLAKE3_ABC);
    expect(result.sha256Hex).toBe(SHA256_ABC);
    expect(result.sizeBytes).toBe(3);
  });

  it('counts bytes as they are added', () => {
    const digest = new DualDigest();
    digest.update(Buffer.from('ab'));
    expect(digest.bytes).toBe(2);
    digest.update(Buffer.from('c'));
    expect(digest.bytes).toBe(3);
  });

  it('returns the same result from repeated finish', () => {
    const digest = new DualDigest();
    digest.update(Buffer.from('abc'));
    const first = digest.finish();
    expect(digest.finish()).toEqual(first);
  });

  it('rejects update after finish', () => {
    const digest = new DualDigest();
    digest.finish();
    expect(() => digest.update(Buffer.from('x'))).toThrow(/after finish/);
  });
});

describe('DualDigest chunk boundaries', () => {
  const data = randomBytes(5 * 1024 * 1024);
  const expectedBlake3 = blake3(data).toString('hex');
  const expectedSha256 = createHash('sha256').update(data).digest('hex');

  it('matches one-call hashes of the whole buffer', () => {
    const result = digestOf(data);
    expect(result.blake3Hex).toBe(expectedBlake3);
    expect(result.sha256Hex).toBe(expectedSha256);
    expect(result.sizeBytes).toBe(data.length);
  });

  it('gives the same digest for random splits', () => {
    for (const maxPiece of [1, 4097, 65_536, 3 * 1024 * 1024]) {
      // Pieces of 1 byte over 5 MiB would take minutes, so that case covers the first 64 KiB only.
      const input = maxPiece === 1 ? data.subarray(0, 65_536) : data;
      const digest = new DualDigest();
      for (const piece of splitRandomly(input, maxPiece)) digest.update(piece);
      const result = digest.finish();
      expect(result.blake3Hex, `maxPiece ${maxPiece}`).toBe(blake3(input).toString('hex'));
      expect(result.sha256Hex, `maxPiece ${maxPiece}`).toBe(createHash('sha256').update(input).digest('hex'));
      expect(result.sizeBytes, `maxPiece ${maxPiece}`).toBe(input.length);
    }
  });

  it('gives the same digest with updateYielding', async () => {
    const digest = new DualDigest();
    for (const piece of splitRandomly(data, 3 * 1024 * 1024)) await digest.updateYielding(piece);
    const result = digest.finish();
    expect(result.blake3Hex).toBe(expectedBlake3);
    expect(result.sha256Hex).toBe(expectedSha256);
  });

  it('digests a stream of random chunks', async () => {
    const result = await digestStream(Readable.from(splitRandomly(data, 2 * 1024 * 1024)));
    expect(result.blake3Hex).toBe(expectedBlake3);
    expect(result.sha256Hex).toBe(expectedSha256);
    expect(result.sizeBytes).toBe(data.length);
  });

  it('digests an async iterable', async () => {
    async function* pieces() {
      yield* splitRandomly(data, 100_000);
    }
    const result = await digestStream(pieces());
    expect(result.blake3Hex).toBe(expectedBlake3);
  });
});

describe('createDigestTransform', () => {
  it('passes bytes through unchanged and digests them', async () => {
    const data = randomBytes(3 * 1024 * 1024 + 17);
    const transform = createDigestTransform();
    const output: Buffer[] = [];
    await pipeline(Readable.from(splitRandomly(data, 1_500_000)), transform, collectInto(output));
    expect(Buffer.concat(output).equals(data)).toBe(true);
    expect(transform.result().blake3Hex).toBe(blake3(data).toString('hex'));
    expect(transform.result().sha256Hex).toBe(createHash('sha256').update(data).digest('hex'));
    expect(transform.result().sizeBytes).toBe(data.length);
  });

  it('throws from result before the end', () => {
    const transform = createDigestTransform();
    expect(() => transform.result()).toThrow(/before the stream finished/);
  });

  it('allows exactly maxBytes', async () => {
    const transform = createDigestTransform({ maxBytes: 10 });
    await pipeline(Readable.from([Buffer.alloc(4), Buffer.alloc(6)]), transform, collectInto([]));
    expect(transform.result().sizeBytes).toBe(10);
  });

  it('errors with PayloadTooLargeError past maxBytes', async () => {
    const transform = createDigestTransform({ maxBytes: 10 });
    const output: Buffer[] = [];
    const run = pipeline(Readable.from([Buffer.alloc(4), Buffer.alloc(6), Buffer.alloc(1)]), transform, collectInto(output));
    await expect(run).rejects.toBeInstanceOf(PayloadTooLargeError);
    await expect(run).rejects.toMatchObject({ status: 413, message: expect.stringContaining('10 bytes') });
    expect(Buffer.concat(output).length).toBeLessThanOrEqual(10);
  });

  it('stops before forwarding an oversized chunk', async () => {
    const transform = createDigestTransform({ maxBytes: 5 });
    const output: Buffer[] = [];
    const run = pipeline(Readable.from([Buffer.alloc(6)]), transform, collectInto(output));
    await expect(run).rejects.toBeInstanceOf(PayloadTooLargeError);
    expect(output).toHaveLength(0);
  });

  it('uses the onExceed error', async () => {
    class CustomLimitError extends Error {}
    const transform = createDigestTransform({ maxBytes: 0, onExceed: () => new CustomLimitError('limit') });
    const run = pipeline(Readable.from([Buffer.from('x')]), transform, collectInto([]));
    await expect(run).rejects.toBeInstanceOf(CustomLimitError);
  });

  it('rejects a negative maxBytes', () => {
    expect(() => createDigestTransform({ maxBytes: -1 })).toThrow(RangeError);
  });
});

describe('digestFile', () => {
  let directory: string;

  beforeAll(async () => {
    directory = await mkdtemp(path.join(tmpdir(), 'digest-test-'));
  });

  afterAll(async () => {
    await rm(directory, { recursive: true, force: true });
  });

  it('agrees with sha256sum', async () => {
    const filePath = path.join(directory, 'sha256-input.bin');
    await writeFile(filePath, randomBytes(2 * 1024 * 1024 + 3));
    const expected = execFileSync('sha256sum', [filePath], { encoding: 'utf8' }).split(' ')[0];
    const result = await digestFile(filePath);
    expect(result.sha256Hex).toBe(expected);
    expect(result.sizeBytes).toBe(2 * 1024 * 1024 + 3);
  });

  it('agrees with b3sum or a one-call hash', async () => {
    const data = randomBytes(3 * 1024 * 1024 + 5);
    const filePath = path.join(directory, 'blake3-input.bin');
    await writeFile(filePath, data);
    const expected = commandExists('b3sum')
      ? execFileSync('b3sum', [filePath], { encoding: 'utf8' }).split(' ')[0]
      : blake3(data).toString('hex');
    const result = await digestFile(filePath);
    expect(result.blake3Hex).toBe(expected);
  });

  it('digests an empty file', async () => {
    const filePath = path.join(directory, 'empty.bin');
    await writeFile(filePath, '');
    const result = await digestFile(filePath);
    expect(result.blake3Hex).toBe(BLAKE3_EMPTY);
    expect(result.sizeBytes).toBe(0);
  });

  it('rejects a missing file', async () => {
    await expect(digestFile(path.join(directory, 'missing.bin'))).rejects.toMatchObject({ code: 'ENOENT' });
  });
});
