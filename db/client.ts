import path from 'node:path';
import fs from 'node:fs';
import pg from 'pg';
import { PGlite } from '@electric-sql/pglite';
import { drizzle as drizzleNodePg } from 'drizzle-orm/node-postgres';
import { migrate as migrateNodePg } from 'drizzle-orm/node-postgres/migrator';
import { drizzle as drizzlePglite } from 'drizzle-orm/pglite';
import { migrate as migratePglite } from 'drizzle-orm/pglite/migrator';
import type { ExtractTablesWithRelations } from 'drizzle-orm';
import type { PgDatabase, PgQueryResultHKT, PgTransaction } from 'drizzle-orm/pg-core';
import * as schema from './schema';

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
  close(): Promise<void>;
}

export interface ConnectOptions {
  databaseUrl?: string;
  pgliteDir: string;
  migrationsFolder?: string;
}

const MIGRATION_LOCK_KEY = 7_345_112_903;

export function defaultMigrationsFolder(): string {
  return path.resolve(/*turbopackIgnore: true*/ process.cwd(), 'db/migrations');
}

/** Opens PostgreSQL (when a URL is given) or embedded PGlite, then applies the committed migrations. */
export async function connectDatabase(options: ConnectOptions): Promise<DatabaseConnection> {
  const migrationsFolder = options.migrationsFolder ?? defaultMigrationsFolder();
  return options.databaseUrl
    ? connectPostgres(options.databaseUrl, migrationsFolder)
    : connectPglite(options.pgliteDir, migrationsFolder);
}

async function connectPostgres(databaseUrl: string, migrationsFolder: string): Promise<DatabaseConnection> {
  const pool = new pg.Pool({ connectionString: databaseUrl, max: 20 });

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
  let listener: pg.Client | undefined;
  const handlers = new Map<string, Set<NotificationHandler>>();

  async function ensureListener(): Promise<pg.Client> {
    if (listener) return listener;
    const client = new pg.Client({ connectionString: databaseUrl });
    await client.connect();
    client.on('notification', (message) => {
      for (const handler of handlers.get(message.channel) ?? []) handler(message.payload ?? '');
    });
    listener = client;
    return client;
  }

  return {
    db,
    kind: 'postgres',
    async listen(channel, handler) {
      const client = await ensureListener();
      let set = handlers.get(channel);
      if (!set) {
        set = new Set();
        handlers.set(channel, set);
        await client.query(`LISTEN ${pg.escapeIdentifier(channel)}`);
      }
      set.add(handler);
      return async () => {
        set.delete(handler);
      };
    },
    async ping() {
      await pool.query('SELECT 1');
    },
    async close() {
      await listener?.end();
      await pool.end();
    },
  };
}

async function connectPglite(dataDir: string, migrationsFolder: string): Promise<DatabaseConnection> {
  fs.mkdirSync(dataDir, { recursive: true });
  const client = await PGlite.create(dataDir);
  const drizzleDb = drizzlePglite(client, { schema });
  await migratePglite(drizzleDb, { migrationsFolder });

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
    async close() {
      await client.close();
    },
  };
}

/** The rows of a raw `execute(sql...)` result, which node-postgres and PGlite both return as `{ rows }`. */
export function rowsOf<Row>(result: unknown): Row[] {
  return (result as { rows: Row[] }).rows;
}
