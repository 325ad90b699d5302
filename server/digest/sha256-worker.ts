import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';
import { getLogger } from '../logger';

/**
 * SHA-256 on worker threads, so that it runs beside BLAKE3 on the calling thread instead of after it.
 *
 * Each job is one SHA-256 computation. Its hash state lives in the worker that opened it, so the job
 * stays on that worker until it is finished or dropped. The caller fills ArrayBuffers of up to
 * SLICE_BYTES and transfers them without a copy. The worker hashes each buffer and transfers it back
 * to a small free list, which serves the next slice of any job.
 *
 * A worker that dies (an uncaught error, a `terminate()`) fails every job it holds, and the next job
 * starts a new worker. Workers are unreferenced while no reply is awaited, so an idle pool never keeps
 * the process alive.
 */

/** Size of the buffers sent to a worker, in bytes. */
export const SLICE_BYTES = 1024 * 1024;

/** Free buffers kept for reuse; buffers returned beyond this are left to the garbage collector. */
const MAX_FREE_BUFFERS = 8;

// Plain CommonJS so that it runs from a string: the file layout differs between tsx, vitest and the
// Next.js server bundle, but an eval worker needs no path.
const WORKER_SOURCE = `
const { parentPort } = require('node:worker_threads');
const { createHash } = require('node:crypto');
const hashes = new Map();
parentPort.on('message', (message) => {
  const job = message.job;
  try {
    if (message.type === 'update') {
      let hash = hashes.get(job);
      if (hash === undefined) {
        hash = createHash('sha256');
        hashes.set(job, hash);
      }
      const startedAt = performance.now();
      hash.update(new Uint8Array(message.buffer, 0, message.length));
      const seconds = (performance.now() - startedAt) / 1000;
      parentPort.postMessage({ type: 'updated', job, buffer: message.buffer, seconds }, [message.buffer]);
    } else if (message.type === 'finish') {
      const hash = hashes.get(job) ?? createHash('sha256');
      hashes.delete(job);
      parentPort.postMessage({ type: 'finished', job, hex: hash.digest('hex') });
    } else if (message.type === 'drop') {
      hashes.delete(job);
    } else if (message.type === 'crash') {
      throw new Error('crash requested by the parent thread');
    }
  } catch (error) {
    if (message.type === 'crash') throw error;
    hashes.delete(job);
    parentPort.postMessage({ type: 'failed', job, message: String(error && error.message ? error.message : error) });
  }
});
`;

type WorkerReply =
  | { type: 'updated'; job: number; buffer: ArrayBuffer; seconds: number }
  | { type: 'finished'; job: number; hex: string }
  | { type: 'failed'; job: number; message: string };

interface PoolState {
  workers: Sha256Worker[];
  freeBuffers: ArrayBuffer[];
  nextJobId: number;
}

// Next.js may load this module once per route bundle; one pool per process is kept on globalThis.
const globalForPool = globalThis as typeof globalThis & { artifactStoreSha256Pool?: PoolState };
const pool = (globalForPool.artifactStoreSha256Pool ??= { workers: [], freeBuffers: [], nextJobId: 1 });

/** Number of SHA-256 workers: one per core beyond the calling thread, at least one and at most four. */
const MAX_WORKERS = Math.max(1, Math.min(4, availableParallelism() - 1));

/** Returns a buffer of SLICE_BYTES from the free list, or a new one. */
export function takeSliceBuffer(): ArrayBuffer {
  return pool.freeBuffers.pop() ?? new ArrayBuffer(SLICE_BYTES);
}

/** Puts a buffer that is no longer in use back on the free list. */
export function returnSliceBuffer(buffer: ArrayBuffer): void {
  if (buffer.byteLength === SLICE_BYTES && pool.freeBuffers.length < MAX_FREE_BUFFERS) pool.freeBuffers.push(buffer);
}

/** One SHA-256 computation on a worker thread. */
export class Sha256Job {
  readonly #worker: Sha256Worker;
  readonly id: number;
  #queued = 0;
  #failure: Error | undefined;
  #waiters: Array<{ resolve: () => void; reject: (error: Error) => void }> = [];
  #finish: { resolve: (hex: string) => void; reject: (error: Error) => void } | undefined;
  /** Seconds the worker spent in SHA-256 calls for this job. */
  hashSeconds = 0;

  constructor(worker: Sha256Worker, id: number) {
    this.#worker = worker;
    this.id = id;
  }

  /** Number of buffers sent and not yet returned. */
  get queued(): number {
    return this.#queued;
  }

  /** Error that ended the job, if any. */
  get failure(): Error | undefined {
    return this.#failure;
  }

  /**
   * Transfers `buffer` to the worker, which hashes its first `length` bytes; the buffer is detached
   * here and returns to the free list once hashed. Throws if the job has failed or was dropped.
   */
  send(buffer: ArrayBuffer, length: number): void {
    if (this.#failure) throw this.#failure;
    this.#queued += 1;
    this.#worker.post({ type: 'update', job: this.id, buffer, length }, [buffer], true);
  }

  /** Resolves once fewer than `limit` buffers are queued; rejects when the job fails or is dropped. */
  async waitForRoom(limit: number): Promise<void> {
    while (this.#queued >= limit) {
      if (this.#failure) throw this.#failure;
      await new Promise<void>((resolve, reject) => this.#waiters.push({ resolve, reject }));
    }
    if (this.#failure) throw this.#failure;
  }

  /** Completes the hash of everything sent and returns it as lowercase hex. The job ends with it. */
  finish(): Promise<string> {
    if (this.#failure) return Promise.reject(this.#failure);
    return new Promise<string>((resolve, reject) => {
      this.#finish = { resolve, reject };
      this.#worker.post({ type: 'finish', job: this.id }, [], true);
    });
  }

  /** Ends the job without a result and frees its state in the worker. Safe to call more than once. */
  drop(): void {
    if (this.#failure) return;
    this.#worker.post({ type: 'drop', job: this.id }, [], false);
    this.fail(new Error('The SHA-256 job was dropped.'));
  }

  /** @internal Called by the worker with a returned buffer. */
  returned(buffer: ArrayBuffer, seconds: number): void {
    this.#queued -= 1;
    this.hashSeconds += seconds;
    returnSliceBuffer(buffer);
    this.#waiters.shift()?.resolve();
  }

  /** @internal Called by the worker with the final hash. */
  finished(hex: string): void {
    this.#worker.forget(this.id);
    this.#finish?.resolve(hex);
  }

  /** @internal Ends the job with `error`: queued and future calls reject with it. */
  fail(error: Error): void {
    if (this.#failure) return;
    this.#failure = error;
    this.#worker.forget(this.id);
    for (const waiter of this.#waiters.splice(0)) waiter.reject(error);
    this.#finish?.reject(error);
  }
}

/** One worker thread and the jobs whose state it holds. */
class Sha256Worker {
  readonly #thread: Worker;
  readonly #jobs = new Map<number, Sha256Job>();
  #awaitedReplies = 0;
  #failure: Error | undefined;

  constructor() {
    // The thread keeps only hash states and small messages (the buffers are transferred), so small heaps
    // keep its share of the server's RSS down.
    this.#thread = new Worker(WORKER_SOURCE, {
      eval: true,
      name: 'sha256-digest',
      resourceLimits: { maxYoungGenerationSizeMb: 2, maxOldGenerationSizeMb: 32 },
    });
    this.#thread.unref();
    this.#thread.on('message', (reply: WorkerReply) => this.#receive(reply));
    this.#thread.on('error', (error) => this.#die(new Error('The SHA-256 worker thread failed.', { cause: error })));
    this.#thread.on('exit', (code) => this.#die(new Error(`The SHA-256 worker thread exited with code ${code}.`)));
  }

  get jobCount(): number {
    return this.#jobs.size;
  }

  open(id: number): Sha256Job {
    const job = new Sha256Job(this, id);
    this.#jobs.set(id, job);
    return job;
  }

  /** Posts a message; while any reply is awaited the thread keeps the process alive. */
  post(message: object, transfer: ArrayBuffer[], expectsReply: boolean): void {
    if (this.#failure) throw this.#failure;
    if (expectsReply && this.#awaitedReplies++ === 0) this.#thread.ref();
    this.#thread.postMessage(message, transfer);
  }

  forget(id: number): void {
    this.#jobs.delete(id);
  }

  /** Sends a message that makes the thread throw outside any job, as a real crash would. Tests only. */
  crash(): void {
    this.#thread.postMessage({ type: 'crash', job: 0 });
  }

  #receive(reply: WorkerReply): void {
    if (--this.#awaitedReplies === 0) this.#thread.unref();
    const job = this.#jobs.get(reply.job);
    if (reply.type === 'updated') {
      // A dropped job's buffers still come back; they go to the free list all the same.
      if (job) job.returned(reply.buffer, reply.seconds);
      else returnSliceBuffer(reply.buffer);
    } else if (reply.type === 'finished') {
      job?.finished(reply.hex);
    } else {
      job?.fail(new Error(`SHA-256 failed in the worker thread: ${reply.message}`));
    }
  }

  #die(error: Error): void {
    if (this.#failure) return;
    this.#failure = error;
    const jobCount = this.#jobs.size;
    pool.workers = pool.workers.filter((worker) => worker !== this);
    for (const job of [...this.#jobs.values()]) job.fail(error);
    // Outside the server (the CLI) the logger's settings may be invalid; that must not become an uncaught error here.
    try {
      getLogger().error({ err: error, open_jobs: jobCount }, 'SHA-256 worker thread stopped, so its open digests failed');
    } catch {
      console.error(error);
    }
  }
}

/**
 * Opens a SHA-256 job on the worker with the fewest jobs, starting a worker when none is idle and the
 * pool has room.
 */
export function openSha256Job(): Sha256Job {
  let worker = pool.workers.reduce<Sha256Worker | undefined>(
    (best, candidate) => (best === undefined || candidate.jobCount < best.jobCount ? candidate : best),
    undefined,
  );
  if (worker === undefined || (worker.jobCount > 0 && pool.workers.length < MAX_WORKERS)) {
    worker = new Sha256Worker();
    pool.workers.push(worker);
  }
  return worker.open(pool.nextJobId++);
}

/** Counts of live workers and their open jobs, for tests and diagnostics. */
export function sha256PoolStats(): { workers: number; jobs: number } {
  return {
    workers: pool.workers.length,
    jobs: pool.workers.reduce((sum, worker) => sum + worker.jobCount, 0),
  };
}

/** Makes every worker thread throw an uncaught error. Tests use it to check that jobs fail instead of hanging. */
export function crashSha256WorkersForTest(): void {
  for (const worker of pool.workers) worker.crash();
}
