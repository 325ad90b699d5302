import { setTimeout as sleep } from 'node:timers/promises';
import pg from 'pg';
import type { Logger } from 'pino';
import type { Lock, Locker } from '@tus/server';
import { TimedClient } from '@/db/client';
import { ServiceUnavailableError } from '../errors';

/** How long a request waits for a held upload lock before it gets 423 Locked. */
export const LOCK_WAIT_MS = 2000;
const LOCK_POLL_MS = 25;
/** How long a tus request waits for a connection of the lock pool by default. */
const UPLOAD_LOCK_CONNECTION_WAIT_MS = 30_000;
/** The Retry-After of a 503 when every connection of the lock pool holds an upload's lock. */
const LOCKS_EXHAUSTED_RETRY_AFTER_SECONDS = 5;
// First key of the two-key advisory lock space, so upload locks never collide with the one-key locks
// that blobs and migrations take.
const UPLOAD_LOCK_CLASS = 0x7475_7300;

/** The tus error shape that @tus/server turns into a response. */
export const UPLOAD_LOCKED = { status_code: 423, body: 'The upload is locked by another request; retry after it finishes.\n' };

/** Acquires and releases one lock attempt; `tryAcquire` returns false while another holder has it. */
interface LockBackend {
  tryAcquire(id: string): Promise<{ release(): Promise<void> } | null>;
}

/**
 * A tus Lock that never takes a lock from its holder: a second request for the same upload polls for
 * up to LOCK_WAIT_MS and then fails with 423, so two PATCH requests never append at once. An abort of
 * the waiting request's signal ends the wait at once.
 */
class PollingLock implements Lock {
  #release: (() => Promise<void>) | undefined;

  constructor(
    private readonly backend: LockBackend,
    private readonly id: string,
  ) {}

  async lock(signal: AbortSignal): Promise<void> {
    const deadline = Date.now() + LOCK_WAIT_MS;
    for (;;) {
      const held = await this.backend.tryAcquire(this.id);
      if (held) {
        this.#release = () => held.release();
        return;
      }
      if (signal.aborted || Date.now() >= deadline) throw UPLOAD_LOCKED;
      await sleep(LOCK_POLL_MS);
    }
  }

  async unlock(): Promise<void> {
    const release = this.#release;
    this.#release = undefined;
    await release?.();
  }
}

const globalForLocks = globalThis as typeof globalThis & { artifactStoreUploadLocks?: Set<string> };

/** Locks within one process; enough for PGlite, which only one process can open. */
export class InProcessLocker implements Locker {
  readonly #held = (globalForLocks.artifactStoreUploadLocks ??= new Set<string>());

  newLock(id: string): Lock {
    return new PollingLock(
      {
        tryAcquire: async (key) => {
          if (this.#held.has(key)) return null;
          this.#held.add(key);
          return { release: async () => void this.#held.delete(key) };
        },
      },
      id,
    );
  }
}

/**
 * Locks through PostgreSQL session advisory locks, so several server processes on one database never
 * write one upload at once. Each held lock keeps one connection of a dedicated pool; if the process
 * dies, PostgreSQL drops the connection and with it the lock. Upload ids are hashed to 32 bits with
 * hashtext, so two different ids can share a lock (about one chance in 4 billion), which only makes them
 * wait for each other.
 */
export class PostgresLocker implements Locker {
  readonly #pool: pg.Pool;
  readonly #maxConnections: number;

  /**
   * `connectionWaitMs` is how long a request waits for a connection of the pool. When every connection
   * holds a lock that long, the request gets 503 "Upload locks exhausted". The default stays below the
   * default body idle timeout, so the client learns why before its unread body would close the connection.
   */
  constructor(databaseUrl: string, log: Pick<Logger, 'warn'>, maxConnections = 20, connectionWaitMs = UPLOAD_LOCK_CONNECTION_WAIT_MS) {
    this.#maxConnections = maxConnections;
    this.#pool = new pg.Pool({ connectionString: databaseUrl, max: maxConnections, connectionTimeoutMillis: connectionWaitMs, Client: TimedClient });
    // An idle connection that PostgreSQL closes emits 'error' on the pool, which would otherwise be an
    // uncaught exception. The pool opens a new connection on next use.
    this.#pool.on('error', (error) => log.warn({ err: error }, 'an idle connection of the upload lock pool failed; the pool will open a new one'));
  }

  newLock(id: string): Lock {
    return new PollingLock({ tryAcquire: (key) => this.#tryAcquire(key) }, id);
  }

  async #tryAcquire(id: string): Promise<{ release(): Promise<void> } | null> {
    let client: pg.PoolClient;
    try {
      client = await this.#pool.connect();
    } catch (error) {
      // Every connection holds the lock of an upload being written, and none came free in time.
      if (this.#pool.totalCount >= this.#maxConnections && this.#pool.idleCount === 0) throw this.#locksExhausted(error);
      throw error;
    }
    let acquired = false;
    try {
      const result = await client.query<{ locked: boolean }>('SELECT pg_try_advisory_lock($1, hashtext($2)) AS locked', [UPLOAD_LOCK_CLASS, id]);
      acquired = result.rows[0].locked;
    } finally {
      if (!acquired) client.release();
    }
    if (!acquired) return null;

    return {
      release: async () => {
        try {
          await client.query('SELECT pg_advisory_unlock($1, hashtext($2))', [UPLOAD_LOCK_CLASS, id]);
          client.release();
        } catch (error) {
          // Destroying the connection ends its session, which releases the lock too.
          client.release(error as Error);
        }
      },
    };
  }

  #locksExhausted(cause: unknown): ServiceUnavailableError {
    return new ServiceUnavailableError(
      `This server is writing ${this.#maxConnections} uploads at once, as many as it can lock, and none finished in time. Retry the request shortly.`,
      { cause, title: 'Upload locks exhausted', headers: { 'Retry-After': String(LOCKS_EXHAUSTED_RETRY_AFTER_SECONDS) } },
    );
  }

  async close(): Promise<void> {
    await this.#pool.end();
  }
}
