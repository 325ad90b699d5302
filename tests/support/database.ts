import crypto from 'node:crypto';
import path from 'node:path';
import pg from 'pg';
import { connectDatabase, type DatabaseConnection } from '@/db/client';

/**
 * The PostgreSQL server the integration tests use, as a URL to its maintenance database, from
 * TEST_DATABASE_URL (for example postgres://postgres@127.0.0.1:5432/postgres). When it is unset the tests
 * run on embedded PGlite instead.
 */
export const TEST_DATABASE_URL = process.env.TEST_DATABASE_URL || undefined;
export const ON_POSTGRES = TEST_DATABASE_URL !== undefined;

/** Creates an empty database for one test file and returns its URL and a function that drops it. */
export async function createTestDatabase(): Promise<{ url: string; drop(): Promise<void> }> {
  if (!TEST_DATABASE_URL) throw new Error('createTestDatabase needs TEST_DATABASE_URL');
  const name = `as_test_${crypto.randomBytes(6).toString('hex')}`;
  const admin = new pg.Client({ connectionString: TEST_DATABASE_URL });
  await admin.connect();
  await admin.query(`CREATE DATABASE ${name}`);
  await admin.end();
  const url = new URL(TEST_DATABASE_URL);
  url.pathname = `/${name}`;
  return {
    url: url.toString(),
    async drop() {
      const client = new pg.Client({ connectionString: TEST_DATABASE_URL });
      await client.connect();
      await client.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      await client.end();
    },
  };
}

/** A migrated database of one test file, on PostgreSQL with TEST_DATABASE_URL and on PGlite without it. */
export interface ScratchDatabase {
  connection: DatabaseConnection;
  /** The PostgreSQL URL, for a second connection, or undefined on PGlite, which allows only one. */
  url: string | undefined;
  /** Closes the connection and drops the database. */
  close(): Promise<void>;
}

/** Creates and connects a new database: a PostgreSQL database, or PGlite in `directory`. */
export async function connectScratchDatabase(directory: string): Promise<ScratchDatabase> {
  if (!ON_POSTGRES) {
    const connection = await connectDatabase({ pgliteDir: path.join(directory, 'pglite') });
    return { connection, url: undefined, close: () => connection.close() };
  }
  const database = await createTestDatabase();
  const connection = await connectDatabase({ databaseUrl: database.url, pgliteDir: '' });
  return {
    connection,
    url: database.url,
    async close() {
      await connection.close();
      await database.drop();
    },
  };
}
