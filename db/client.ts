import path from 'node:path';
import fs from 'node:fs';
import pg from 'pg';
import { PGlite } from '@electric-sql/pglite';
import { drizzle as drizzleNodePg } from 'drizzle-orm/node-postgres';
import { migrate as migrateNodePg } from 'drizzle-orm/node-postgres/migrator';
import { drizzle as drizzlePglite } from 'drizzle-orm/pglite';
import { migrate as migratePglite } from 'drizzle-orm/pglite/migrator';
import { DrizzleQueryError, type ExtractTablesWithRelations } from 'drizzle-orm';
import type { PgDatabase, PgQueryResultHKT, PgTransaction } from 'drizzle-orm/pg-core';
import { lockPgliteDirectory } from './pglite-lock';
import * as schema from './schema';

// drizzle-orm 0.45 sets no `name` on DrizzleQueryError, and the production build minifies class names, so
// a failed query would be logged with a one-letter type. Naming the prototype of this copy of drizzle-orm,
// the one that runs this module's queries, covers every error they throw.
DrizzleQueryError.prototype.name = 'DrizzleQueryError';

export type Schema = typeof schema;
export type Database = PgDatabase<PgQueryResultHKT, Schema, ExtractTablesWithRelations<Schema>>;
export type Transaction = PgTransaction<PgQueryResultHKT, Schema, ExtractTablesWithRelations<Schema>>;
/** Either the database or an open transaction: functions taking this run inside the caller's transaction. */
export type Executor = Database | Transaction;

export type NotificationHandler = (payload: string) => void;

/** A connected database: the drizzle handle, LISTEN support and a way to close everything. */
export interface DatabaseConnection {
  db: Database;
  kind: 'postgres' | 'pglite';
  /** Subscribes to a NOTIFY channel; returns the function that unsubscribes. */
  listen(channel: string, handler: NotificationHandler): Promise<() => Promise<void>>;
  /** Checks the connection with a trivial query. */
  ping(): Promise<void>;
  /**
   * Takes the advisory lock (lockClass, hashtext(key)) without waiting. Returns the function that
   * releases it, or null while another holder has it. On PostgreSQL the lock belongs to a pooled
   * connection kept until release, so it excludes other processes and ends with that connection. On
   * PGlite, which one process opens, the lock is an entry in this process's memory.
   */
  tryAdvisoryLock(lockClass: number, key: string): Promise<(() => Promise<void>) | null>;
  close(): Promise<void>;
}

/** The subset of a pino logger the connection uses to report failures it recovers from. */
export interface ConnectionLogger {
  info(object: object, message: string): void;
  warn(object: object, message: string): void;
}

export interface ConnectOptions {
  databaseUrl?: string;
  pgliteDir: string;
  migrationsFolder?: string;
  /** Where recovered failures are reported; defaults to stderr. */
  log?: ConnectionLogger;
  /** How often the LISTEN connection is checked with a query; tests shorten it. */
  listenerCheckIntervalMs?: number;
}

const STDERR_LOGGER: ConnectionLogger = {
  info: () => undefined,
  warn: (object, message) => console.error(message, object),
};

const MIGRATION_LOCK_KEY = 7_345_112_903;

export function defaultMigrationsFolder(): string {
  return path.resolve(/*turbopackIgnore: true*/ process.cwd(), 'db/migrations');
}

/** Opens PostgreSQL (when a URL is given) or embedded PGlite, then applies the committed migrations. */
export async function connectDatabase(options: ConnectOptions): Promise<DatabaseConnection> {
  const migrationsFolder = options.migrationsFolder ?? defaultMigrationsFolder();
  return options.databaseUrl
    ? connectPostgres(options.databaseUrl, migrationsFolder, options.log ?? STDERR_LOGGER, options.listenerCheckIntervalMs ?? LISTENER_CHECK_INTERVAL_MS)
    : connectPglite(options.pgliteDir, migrationsFolder);
}

/**
 * How long opening a PostgreSQL connection may take before it fails. Without a limit, a database behind
 * a network that drops packets held every request until the client gave up. With it, such requests get
 * 503 "Database unavailable" once the limit passes.
 */
export const POSTGRES_CONNECT_TIMEOUT_MS = 10_000;

/**
 * A pg.Client that gives up opening its connection after POSTGRES_CONNECT_TIMEOUT_MS. A pool made with it
 * limits only opening connections: pg-pool's own connectionTimeoutMillis would also fail requests that
 * wait for a busy pool's next free connection, with the same error as an unreachable database.
 */
export class TimedClient extends pg.Client {
  constructor(config?: string | pg.ClientConfig) {
    const options = typeof config === 'string' ? { connectionString: config } : (config ?? {});
    super({ ...options, connectionTimeoutMillis: POSTGRES_CONNECT_TIMEOUT_MS });
  }
}

async function connectPostgres(databaseUrl: string, migrationsFolder: string, log: ConnectionLogger, listenerCheckIntervalMs: number): Promise<DatabaseConnection> {
  const pool = new pg.Pool({ connectionString: databaseUrl, max: 20, Client: TimedClient });
  // An idle pooled connection that the server closes (restart, failover) emits 'error' on the pool;
  // without a listener that would crash the process. The pool replaces the connection on next use.
  pool.on('error', (error) => log.warn({ err: error }, 'an idle PostgreSQL connection failed; the pool will open a new one'));

  // Two processes starting at once must not run the same migration twice.
  const client = await pool.connect();
  try {
    await client.query('SELECT pg_advisory_lock($1)', [MIGRATION_LOCK_KEY]);
    await migrateNodePg(drizzleNodePg(client, { schema }), { migrationsFolder });
  } finally {
    await client.query('SELECT pg_advisory_unlock($1)', [MIGRATION_LOCK_KEY]).catch(() => undefined);
    client.release();
  }

  const db = drizzleNodePg(pool, { schema }) as unknown as Database;
  const listener = new NotificationListener(databaseUrl, log, listenerCheckIntervalMs);

  return {
    db,
    kind: 'postgres',
    listen: (channel, handler) => listener.listen(channel, handler),
    async ping() {
      await pool.query('SELECT 1');
    },
    tryAdvisoryLock: (lockClass, key) => tryPostgresAdvisoryLock(pool, lockClass, key),
    async close() {
      await listener.close();
      await pool.end();
    },
  };
}

async function tryPostgresAdvisoryLock(pool: pg.Pool, lockClass: number, key: string): Promise<(() => Promise<void>) | null> {
  const client = await pool.connect();
  let locked = false;
  try {
    locked = (await client.query<{ locked: boolean }>('SELECT pg_try_advisory_lock($1, hashtext($2)) AS locked', [lockClass, key])).rows[0].locked;
  } finally {
    if (!locked) client.release();
  }
  if (!locked) return null;
  return async () => {
    try {
      await client.query('SELECT pg_advisory_unlock($1, hashtext($2))', [lockClass, key]);
      client.release();
    } catch (error) {
      // A destroyed connection ends its session and with it the lock.
      client.release(error as Error);
    }
  };
}

const LISTENER_RETRY_MS = 1000;
const LISTENER_CHECK_INTERVAL_MS = 15_000;

/**
 * One dedicated connection for LISTEN. When it fails (a PostgreSQL restart, a network cut) it reconnects
 * every second and listens on every channel again; after reconnecting it calls each handler with "0",
 * so waiters re-check the log for events committed while no connection was listening.
 *
 * A connection that is lost without a word (a network that drops packets, a backend ended while no
 * packet got through) delivers no notification and no error. So a query checks it every
 * `checkIntervalMs`, and one that gets no response within that time counts as a failure.
 */
class NotificationListener {
  readonly #handlers = new Map<string, Set<NotificationHandler>>();
  #client: pg.Client | undefined;
  #connecting: Promise<pg.Client> | undefined;
  #closed = false;
  #check: NodeJS.Timeout | undefined;
  #checking = false;

  constructor(
    private readonly databaseUrl: string,
    private readonly log: ConnectionLogger,
    private readonly checkIntervalMs: number,
  ) {}

  async listen(channel: string, handler: NotificationHandler): Promise<() => Promise<void>> {
    let set = this.#handlers.get(channel);
    if (!set) {
      set = new Set();
      this.#handlers.set(channel, set);
      const client = await this.#connect();
      await client.query(`LISTEN ${pg.escapeIdentifier(channel)}`);
    }
    set.add(handler);
    return async () => {
      set.delete(handler);
    };
  }

  async close(): Promise<void> {
    this.#closed = true;
    clearInterval(this.#check);
    const client = this.#client ?? (await this.#connecting?.catch(() => undefined));
    this.#client = undefined;
    await client?.end().catch(() => undefined);
  }

  #connect(): Promise<pg.Client> {
    if (this.#client) return Promise.resolve(this.#client);
    this.#connecting ??= this.#open().finally(() => (this.#connecting = undefined));
    return this.#connecting;
  }

  async #open(): Promise<pg.Client> {
    const client = new TimedClient({ connectionString: this.databaseUrl });
    client.on('notification', (message) => {
      for (const handler of this.#handlers.get(message.channel) ?? []) handler(message.payload ?? '');
    });
    client.on('error', (error) => {
      this.log.warn({ err: error }, 'the PostgreSQL LISTEN connection failed; reconnecting');
      this.#dropAndReconnect(client);
    });
    client.on('end', () => this.#dropAndReconnect(client));
    await client.connect();
    this.#client = client;
    clearInterval(this.#check);
    this.#check = setInterval(() => void this.#checkConnection(client), this.checkIntervalMs);
    this.#check.unref();
    return client;
  }

  /** Sends a query on the LISTEN connection and reconnects when no response arrives within the check interval. */
  async #checkConnection(client: pg.Client): Promise<void> {
    if (this.#client !== client || this.#checking) return;
    this.#checking = true;
    let timer: NodeJS.Timeout | undefined;
    try {
      const silent = new Promise<never>((_resolve, reject) => {
        timer = setTimeout(() => reject(new Error(`no response within ${this.checkIntervalMs} ms`)), this.checkIntervalMs);
      });
      await Promise.race([client.query('SELECT 1'), silent]);
    } catch (error) {
      if (this.#client === client) {
        this.log.warn({ err: error }, 'the PostgreSQL LISTEN connection did not respond to a check query; reconnecting');
        // end() would wait for a reply that may never come, so the socket is closed at once.
        (client as unknown as { connection?: { stream?: { destroy(): void } } }).connection?.stream?.destroy();
        this.#dropAndReconnect(client);
      }
    } finally {
      clearTimeout(timer);
      this.#checking = false;
    }
  }

  #dropAndReconnect(client: pg.Client): void {
    if (this.#client !== client || this.#closed) return;
    this.#client = undefined;
    client.end().catch(() => undefined);
    const retry = async () => {
      if (this.#closed) return;
      try {
        const fresh = await this.#connect();
        for (const channel of this.#handlers.keys()) await fresh.query(`LISTEN ${pg.escapeIdentifier(channel)}`);
        this.log.info({ channels: [...this.#handlers.keys()] }, 'the PostgreSQL LISTEN connection is back');
        for (const set of this.#handlers.values()) for (const handler of set) handler('0');
      } catch (error) {
        this.log.warn({ err: error }, `reconnecting the PostgreSQL LISTEN connection failed; retrying in ${LISTENER_RETRY_MS} ms`);
        setTimeout(retry, LISTENER_RETRY_MS).unref();
      }
    };
    setTimeout(retry, LISTENER_RETRY_MS).unref();
  }
}

async function connectPglite(dataDir: string, migrationsFolder: string): Promise<DatabaseConnection> {
  fs.mkdirSync(dataDir, { recursive: true });
  const unlock = lockPgliteDirectory(dataDir);
  let client: PGlite;
  try {
    client = await PGlite.create(dataDir);
  } catch (error) {
    unlock();
    throw error;
  }
  const drizzleDb = drizzlePglite(client, { schema });
  await migratePglite(drizzleDb, { migrationsFolder });
  const heldLocks = new Set<string>();

  return {
    db: drizzleDb as unknown as Database,
    kind: 'pglite',
    async listen(channel, handler) {
      const unsubscribe = await client.listen(channel, handler);
      return unsubscribe;
    },
    async ping() {
      await client.query('SELECT 1');
    },
    async tryAdvisoryLock(lockClass, key) {
      const lockKey = `${lockClass}:${key}`;
      if (heldLocks.has(lockKey)) return null;
      heldLocks.add(lockKey);
      return async () => void heldLocks.delete(lockKey);
    },
    async close() {
      await client.close();
      unlock();
    },
  };
}

/** The rows of a raw `execute(sql...)` result, which node-postgres and PGlite both return as `{ rows }`. */
export function rowsOf<Row>(result: unknown): Row[] {
  return (result as { rows: Row[] }).rows;
}

/** Returns true when the error, or an error it wraps, is a PostgreSQL unique violation (SQLSTATE 23505). */
export function isUniqueViolation(error: unknown): boolean {
  for (let current = error; current; current = (current as { cause?: unknown }).cause) {
    if ((current as { code?: string }).code === '23505') return true;
  }
  return false;
}
