import { createHash } from 'node:crypto';
import { Blake3Hasher } from '@napi-rs/blake-hash';
import { getMetrics } from '../metrics/registry';
import type { DigestResult } from './dual-digest';
import { openSha256Job, returnSliceBuffer, SLICE_BYTES, takeSliceBuffer, type Sha256Job } from './sha256-worker';

/**
 * Inputs up to this many bytes are hashed on the calling thread alone, so small files, the common case
 * of a registry, pay no message round trip to a worker.
 * NOTE: the limit is an estimate, not a measured crossover. SHA-256 of 256 KiB takes about 0.13 ms
 * (AMD EPYC with SHA extensions), the order of a round trip to a worker thread on a busy machine.
 */
export const INLINE_DIGEST_MAX_BYTES = 256 * 1024;

/** Buffers one digest may have queued at its worker before `update` waits: its memory bound. */
const MAX_QUEUED_SLICES = 4;

// A digest dropped without finish() or dispose() frees its worker state when it is collected.
const abandonedJobs = new FinalizationRegistry<Sha256Job>((job) => job.drop());

/**
 * BLAKE3 and SHA-256 of one byte sequence, computed side by side: BLAKE3 on the calling thread and
 * SHA-256 on a worker thread, so the two hashes overlap on two cores.
 *
 * The first INLINE_DIGEST_MAX_BYTES are copied and kept until more arrive. An input that ends within
 * that limit is hashed on the calling thread and never reaches a worker. Past it, bytes are copied into
 * SLICE_BYTES buffers that are transferred to the worker, at most MAX_QUEUED_SLICES at a time, so
 * `update` waits when the worker falls behind and memory stays bounded.
 *
 * Callers await each `update` before the next one. The chunk passed to `update` may be reused once
 * the promise resolves. Call `finish` for the result or `dispose` to abandon the digest; either one
 * frees the worker's state.
 */
export class ParallelDigest {
  readonly #blake3 = new Blake3Hasher();
  #sizeBytes = 0;
  /** Copies of the bytes not yet sent to SHA-256 while the input is still small. */
  #inlineChunks: Buffer[] = [];
  #inlineBytes = 0;
  #job: Sha256Job | undefined;
  /** Buffer being filled for the worker, and how many of its bytes are in use. */
  #slice: Buffer | undefined;
  #sliceLength = 0;
  #updating = false;
  #closed: Error | undefined;
  #result: Promise<DigestResult> | undefined;

  /** Number of bytes added so far. */
  get bytes(): number {
    return this.#sizeBytes;
  }

  /**
   * True once the digest was disposed of or lost its worker thread before its result; `finish` then
   * rejects. A digest that finished successfully is not failed and returns the same result again.
   */
  get failed(): boolean {
    return this.#closed !== undefined || this.#job?.failure !== undefined;
  }

  /**
   * Adds bytes to both hashes. Resolves once the bytes are hashed by BLAKE3 and copied for SHA-256;
   * waits while the worker has MAX_QUEUED_SLICES buffers of this digest queued. Rejects after
   * `finish` or `dispose`, while another `update` is pending, and when the worker failed.
   */
  async update(chunk: Uint8Array): Promise<void> {
    this.#beginUpdate();
    try {
      const bytes = Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
      if (this.#job === undefined && this.#inlineBytes + bytes.byteLength <= INLINE_DIGEST_MAX_BYTES) {
        this.#hashBlake3(bytes);
        this.#inlineChunks.push(Buffer.from(bytes));
        this.#inlineBytes += bytes.byteLength;
        return;
      }
      await this.#startJob();
      for (let offset = 0; offset < bytes.byteLength; offset += SLICE_BYTES) {
        const piece = bytes.subarray(offset, offset + SLICE_BYTES);
        this.#hashBlake3(piece);
        await this.#copyForSha256(piece);
      }
    } finally {
      this.#updating = false;
    }
  }

  /**
   * Adds up to SLICE_BYTES bytes that `read` writes into the start of the buffer it is given, and
   * returns how many it wrote. The bytes land directly in the buffer sent to the worker, which saves
   * the copy that `update` makes; `digestFile` reads a file this way.
   */
  async updateFrom(read: (target: Buffer) => Promise<number>): Promise<number> {
    this.#beginUpdate();
    try {
      await this.#startJob();
      if (this.#slice === undefined) await this.#takeSlice();
      const target = this.#slice!.subarray(this.#sliceLength);
      const length = await read(target);
      if (this.#closed) throw this.#closed;
      if (!(length >= 0 && length <= target.byteLength)) throw new RangeError(`read() returned ${length}, expected 0 to ${target.byteLength}.`);
      if (length === 0) return 0;
      this.#hashBlake3(target.subarray(0, length));
      this.#sliceLength += length;
      if (this.#sliceLength === SLICE_BYTES) this.#sendSlice();
      return length;
    } finally {
      this.#updating = false;
    }
  }

  /**
   * Sends the partly filled buffer to the worker, so that a digest kept between requests keeps no
   * buffer. Does nothing for a digest that is still small or has nothing pending.
   */
  flush(): void {
    if (this.#slice !== undefined && this.#sliceLength > 0 && !this.failed) this.#sendSlice();
  }

  /**
   * Completes both hashes. Later calls return the same promise; `update` afterwards rejects. Rejects
   * when the worker failed or the digest was disposed of.
   */
  finish(): Promise<DigestResult> {
    if (this.#closed) return Promise.reject(this.#closed);
    if (this.#updating) return Promise.reject(new Error('ParallelDigest.finish was called while an update was pending.'));
    this.#result ??= this.#complete();
    return this.#result;
  }

  /** Abandons the digest and frees its worker state. Safe to call at any time and more than once. */
  dispose(): void {
    this.#closed ??= new Error('ParallelDigest was disposed of.');
    this.#inlineChunks = [];
    if (this.#job) {
      abandonedJobs.unregister(this);
      this.#job.drop();
    }
    // The slice is not put back on the free list: a pending updateFrom may still be reading into it.
    this.#slice = undefined;
  }

  async #complete(): Promise<DigestResult> {
    const blake3Hex = this.#blake3.digest('hex');
    let sha256Hex: string;
    if (this.#job === undefined) {
      const startedAt = performance.now();
      const sha256 = createHash('sha256');
      for (const piece of this.#inlineChunks) sha256.update(piece);
      sha256Hex = sha256.digest('hex');
      this.#inlineChunks = [];
      getMetrics().digestSeconds.inc((performance.now() - startedAt) / 1000);
    } else {
      if (this.#sliceLength > 0) this.#sendSlice();
      // A slice taken by an updateFrom that reached the end of its file is empty and can serve again.
      if (this.#slice !== undefined) returnSliceBuffer(this.#slice.buffer as ArrayBuffer);
      this.#slice = undefined;
      abandonedJobs.unregister(this);
      try {
        sha256Hex = await this.#job.finish();
      } catch (error) {
        this.#closed ??= error as Error;
        throw error;
      }
      getMetrics().digestSeconds.inc(this.#job.hashSeconds);
    }
    return { blake3Hex, sha256Hex, sizeBytes: this.#sizeBytes };
  }

  #beginUpdate(): void {
    if (this.#closed) throw this.#closed;
    if (this.#result) throw new Error('ParallelDigest.update was called after finish().');
    if (this.#job?.failure) throw this.#job.failure;
    if (this.#updating) throw new Error('ParallelDigest.update was called while another update was pending.');
    this.#updating = true;
  }

  #hashBlake3(bytes: Buffer): void {
    const startedAt = performance.now();
    this.#blake3.update(bytes);
    this.#sizeBytes += bytes.byteLength;
    const metrics = getMetrics();
    metrics.digestBytes.inc(bytes.byteLength);
    metrics.digestSeconds.inc((performance.now() - startedAt) / 1000);
  }

  /** Opens the worker job on the first input past the inline limit and sends it the bytes kept so far. */
  async #startJob(): Promise<void> {
    if (this.#job) return;
    this.#job = openSha256Job();
    abandonedJobs.register(this, this.#job, this);
    const inlineChunks = this.#inlineChunks;
    this.#inlineChunks = [];
    this.#inlineBytes = 0;
    for (const piece of inlineChunks) await this.#copyForSha256(piece);
  }

  async #copyForSha256(bytes: Buffer): Promise<void> {
    let offset = 0;
    while (offset < bytes.byteLength) {
      if (this.#slice === undefined) await this.#takeSlice();
      const length = Math.min(SLICE_BYTES - this.#sliceLength, bytes.byteLength - offset);
      bytes.copy(this.#slice!, this.#sliceLength, offset, offset + length);
      this.#sliceLength += length;
      offset += length;
      if (this.#sliceLength === SLICE_BYTES) this.#sendSlice();
    }
  }

  async #takeSlice(): Promise<void> {
    await this.#job!.waitForRoom(MAX_QUEUED_SLICES);
    // dispose() may have run while this waited; it rejects the wait, so reaching here means still open.
    this.#slice = Buffer.from(takeSliceBuffer());
    this.#sliceLength = 0;
  }

  #sendSlice(): void {
    const slice = this.#slice!;
    this.#slice = undefined;
    this.#job!.send(slice.buffer as ArrayBuffer, this.#sliceLength);
    this.#sliceLength = 0;
  }
}
