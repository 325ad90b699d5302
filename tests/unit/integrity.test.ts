import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { blake3Hex } from '../../server/digest/blake3-hex';
import { encodeCanonicalCbor } from '../../server/encoding/cbor';
import { canonicalJson } from '../../server/encoding/jcs';
import { computeChainDigestHex, EventChainVerifier, GENESIS_CHAIN_DIGEST_HEX, type ChainedEvent } from '../../server/integrity/event-chain';
import { verifyEventExportFile } from '../../server/integrity/verify-events';
import { verifyPackageDirectory } from '../../server/integrity/verify-package';
import { ContentMismatchError, verifyWhileStreaming } from '../../server/integrity/verifying-stream';

const sha256 = (bytes: Uint8Array) => createHash('sha256').update(bytes).digest('hex');

/** Builds a valid chained log of `count` events. */
function buildLog(count: number): ChainedEvent[] {
  const log: ChainedEvent[] = [];
  let previous = GENESIS_CHAIN_DIGEST_HEX;
  for (let sequence = 1; sequence <= count; sequence += 1) {
    const payload = encodeCanonicalCbor({ n: sequence });
    const link = {
      sequence,
      created_at: new Date(Date.UTC(2026, 0, 1, 0, 0, sequence)).toISOString(),
      event_type: 'test.event',
      subject_kind: 'package',
      subject_id: `p-${sequence}`,
      actor: 'tester',
      payload_digest_hex: blake3Hex(payload),
    };
    previous = computeChainDigestHex(previous, link);
    log.push({ ...link, payload, chain_digest_hex: previous });
  }
  return log;
}

function verifyAll(log: ChainedEvent[]) {
  const verifier = new EventChainVerifier();
  for (const event of log) if (!verifier.check(event)) break;
  return verifier;
}

describe('event chain', () => {
  it('chains BLAKE3 of the previous digest and the CBOR link record', () => {
    const [first] = buildLog(1);
    const record = encodeCanonicalCbor({
      sequence: first.sequence,
      created_at: first.created_at,
      event_type: first.event_type,
      subject_kind: first.subject_kind,
      subject_id: first.subject_id,
      actor: first.actor,
      payload_digest_hex: first.payload_digest_hex,
    });
    const expected = blake3Hex(Buffer.concat([Buffer.alloc(32), record]));
    expect(first.chain_digest_hex).toBe(expected);
  });

  it('accepts an untouched log', () => {
    const verifier = verifyAll(buildLog(10));
    expect(verifier.failure).toBeNull();
    expect(verifier.checked).toBe(10);
  });

  it('names an edited payload', () => {
    const log = buildLog(10);
    log[4] = { ...log[4], payload: encodeCanonicalCbor({ n: 999 }) };
    expect(verifyAll(log).failure).toMatchObject({ sequence: 5, reason: 'payload_digest_mismatch' });
  });

  it('names a payload edited together with its digest', () => {
    const log = buildLog(10);
    const payload = encodeCanonicalCbor({ n: 999 });
    log[4] = { ...log[4], payload, payload_digest_hex: blake3Hex(payload) };
    expect(verifyAll(log).failure).toMatchObject({ sequence: 5, reason: 'chain_digest_mismatch' });
  });

  it('names a deleted event', () => {
    const log = buildLog(10);
    log.splice(6, 1);
    expect(verifyAll(log).failure).toMatchObject({ sequence: 7, reason: 'missing_event' });
  });

  it('names the first of two swapped events', () => {
    const log = buildLog(10);
    const third = log[2];
    log[2] = { ...log[3], sequence: 3 };
    log[3] = { ...third, sequence: 4 };
    expect(verifyAll(log).failure).toMatchObject({ sequence: 3, reason: 'chain_digest_mismatch' });
  });

  it('names an event removed from the end', () => {
    const verifier = verifyAll(buildLog(10).slice(0, 8));
    expect(verifier.checkEnd(10, null)).toBe(false);
    expect(verifier.failure).toMatchObject({ sequence: 9, reason: 'missing_event' });
  });
});

describe('event export check', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await fs.mkdtemp(path.join(os.tmpdir(), 'integrity-unit-'));
  });
  afterAll(async () => {
    await fs.rm(dir, { recursive: true, force: true });
  });

  const writeCborSequence = async (file: string, log: ChainedEvent[]) => {
    await fs.writeFile(file, Buffer.concat(log.map((event) => encodeCanonicalCbor(event))));
  };
  const writeJsonLines = async (file: string, log: ChainedEvent[]) => {
    const lines = log.map(({ payload, ...rest }) => canonicalJson({ ...rest, payload_cbor_base64: Buffer.from(payload).toString('base64') }));
    await fs.writeFile(file, lines.join('\n') + '\n');
  };

  it('accepts an untouched CBOR sequence', async () => {
    const file = path.join(dir, 'ok.cborseq');
    await writeCborSequence(file, buildLog(1200));
    expect(await verifyEventExportFile(file)).toMatchObject({ ok: true, checked: 1200 });
  });

  it('names a swapped event in JSON Lines', async () => {
    const log = buildLog(20);
    [log[10], log[11]] = [{ ...log[11], sequence: 11 }, { ...log[10], sequence: 12 }];
    const file = path.join(dir, 'swapped.jsonl');
    await writeJsonLines(file, log);
    expect(await verifyEventExportFile(file)).toMatchObject({ ok: false, first_bad_sequence: 11, reason: 'chain_digest_mismatch' });
  });

  it('reports a truncated CBOR record as malformed', async () => {
    const file = path.join(dir, 'truncated.cborseq');
    await writeCborSequence(file, buildLog(3));
    const bytes = await fs.readFile(file);
    await fs.writeFile(file, bytes.subarray(0, bytes.length - 5));
    expect(await verifyEventExportFile(file)).toMatchObject({ ok: false, first_bad_sequence: 3, reason: 'malformed_record' });
  });
});

describe('package directory check', () => {
  let dir: string;
  const contents: Record<string, Buffer> = {
    'a.txt': Buffer.from('alpha\n'),
    'nested/b.bin': randomBytes(70_000),
  };
  const manifest = {
    manifest_version: 1,
    files: Object.entries(contents).map(([relative_path, bytes]) => ({
      relative_path,
      media_type: 'application/octet-stream',
      size_bytes: bytes.length,
      blake3_hex: blake3Hex(bytes),
      sha256_hex: sha256(bytes),
    })),
  };
  const manifestCbor = encodeCanonicalCbor(manifest);
  const digest = `blake3:${blake3Hex(manifestCbor)}`;

  beforeAll(async () => {
    dir = await fs.mkdtemp(path.join(os.tmpdir(), 'integrity-package-'));
  });
  afterAll(async () => {
    await fs.rm(dir, { recursive: true, force: true });
  });

  const writePackage = async (name: string) => {
    const root = path.join(dir, name);
    for (const [relative, bytes] of Object.entries(contents)) {
      await fs.mkdir(path.dirname(path.join(root, relative)), { recursive: true });
      await fs.writeFile(path.join(root, relative), bytes);
    }
    return root;
  };

  it('accepts a matching directory with CBOR and JSON manifests', async () => {
    const root = await writePackage('ok');
    expect(await verifyPackageDirectory(root, manifestCbor, digest)).toMatchObject({ ok: true, checked_files: 2, manifest_digest_ok: true });
    const json = Buffer.from(canonicalJson(manifest));
    expect(await verifyPackageDirectory(root, json, digest)).toMatchObject({ ok: true, manifest_digest: digest });
  });

  it('names a changed, an extra and a missing file', async () => {
    const root = await writePackage('bad');
    const changed = Buffer.from(contents['nested/b.bin']);
    changed[100] ^= 0xff;
    await fs.writeFile(path.join(root, 'nested/b.bin'), changed);
    await fs.writeFile(path.join(root, 'extra.txt'), 'extra');
    await fs.rm(path.join(root, 'a.txt'));
    const report = await verifyPackageDirectory(root, manifestCbor);
    expect(report.ok).toBe(false);
    expect(report.changed.map((item) => item.relative_path)).toEqual(['nested/b.bin']);
    expect(report.changed[0].mismatches).toEqual(['sha256', 'blake3']);
    expect(report.extra).toEqual(['extra.txt']);
    expect(report.missing).toEqual(['a.txt']);
  });

  it('rejects a manifest with another digest', async () => {
    const root = await writePackage('digest');
    const report = await verifyPackageDirectory(root, manifestCbor, `blake3:${'0'.repeat(64)}`);
    expect(report.manifest_digest_ok).toBe(false);
    expect(report.ok).toBe(false);
  });
});

describe('verifying download stream', () => {
  const bytes = randomBytes(200_000);
  const chunksOf = (data: Buffer) => Readable.from([data.subarray(0, 65_536), data.subarray(65_536, 131_072), data.subarray(131_072)]);

  it('passes matching bytes through whole', async () => {
    const chunks: Buffer[] = [];
    for await (const chunk of verifyWhileStreaming(chunksOf(bytes), { blake3Hex: blake3Hex(bytes), sizeBytes: bytes.length }, () => undefined)) chunks.push(chunk);
    expect(Buffer.concat(chunks).equals(bytes)).toBe(true);
  });

  it('errors before the last byte of changed bytes', async () => {
    const changed = Buffer.from(bytes);
    changed[150_000] ^= 1;
    const received: Buffer[] = [];
    let reported: Error | undefined;
    const stream = verifyWhileStreaming(chunksOf(changed), { blake3Hex: blake3Hex(bytes), sizeBytes: bytes.length }, (error) => (reported = error));
    await expect(
      (async () => {
        for await (const chunk of stream) received.push(chunk);
      })(),
    ).rejects.toBeInstanceOf(ContentMismatchError);
    expect(reported).toBeInstanceOf(ContentMismatchError);
    expect(Buffer.concat(received).length).toBeLessThan(bytes.length);
  });
});

describe('read rate limiter', () => {
  it('holds the average rate at its limit', async () => {
    const { ReadRateLimiter } = await import('../../server/integrity/rate-limiter');
    const limiter = new ReadRateLimiter(10_000_000);
    const started = performance.now();
    for (let index = 0; index < 10; index += 1) await limiter.consume(100_000);
    expect(performance.now() - started).toBeGreaterThanOrEqual(95);
  });

  it('reads at the busy rate while busy', async () => {
    const { ReadRateLimiter } = await import('../../server/integrity/rate-limiter');
    let busy = true;
    const limiter = new ReadRateLimiter(1_000_000_000, { busyBytesPerSecond: 1_000_000, isBusy: () => busy });
    let started = performance.now();
    for (let index = 0; index < 5; index += 1) await limiter.consume(20_000);
    const busyMs = performance.now() - started;
    expect(busyMs).toBeGreaterThanOrEqual(95);

    busy = false;
    started = performance.now();
    for (let index = 0; index < 5; index += 1) await limiter.consume(20_000);
    expect(performance.now() - started).toBeLessThan(busyMs / 2);
  });

  it('saves at most a second of reading', async () => {
    const { ReadRateLimiter } = await import('../../server/integrity/rate-limiter');
    const limiter = new ReadRateLimiter(10_000_000);
    await new Promise((resolve) => setTimeout(resolve, 1500));
    // 2 s of reading at the rate, of which 1 s may have been saved up during the pause.
    const started = performance.now();
    await limiter.consume(20_000_000);
    expect(performance.now() - started).toBeGreaterThanOrEqual(950);
  });
});
