import net from 'node:net';
import { PGlite } from '@electric-sql/pglite';
import { sql } from 'drizzle-orm';
import { drizzle } from 'drizzle-orm/node-postgres';
import pg from 'pg';
import { describe, expect, it } from 'vitest';
import { isDatabaseUnavailable } from '@/db/unavailable';
import { ON_POSTGRES, TEST_DATABASE_URL } from '../support/database';

// Real driver errors: the ones that mean "the database cannot be reached" become 503, and a statement
// that fails on a reachable database stays a 500.

/** Returns a loopback port on which nothing listens. */
async function closedPort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as net.AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

async function rejectionOf(promise: Promise<unknown>): Promise<unknown> {
  try {
    await promise;
  } catch (error) {
    return error;
  }
  throw new Error('expected the promise to reject');
}

describe('isDatabaseUnavailable', () => {
  it('detects a refused connection', async () => {
    const client = new pg.Client({ host: '127.0.0.1', port: await closedPort(), user: 'postgres' });
    const error = await rejectionOf(client.connect());
    expect((error as NodeJS.ErrnoException).code).toBe('ECONNREFUSED');
    expect(isDatabaseUnavailable(error)).toBe(true);
  });

  it('looks through drizzle query errors', async () => {
    const pool = new pg.Pool({ host: '127.0.0.1', port: await closedPort(), user: 'postgres' });
    const db = drizzle(pool);
    try {
      const error = await rejectionOf(db.execute(sql`SELECT 1`));
      expect(error).not.toHaveProperty('code');
      expect(isDatabaseUnavailable(error)).toBe(true);
    } finally {
      await pool.end();
    }
  });

  it('leaves statement errors alone', async () => {
    const database = new PGlite();
    try {
      const error = await rejectionOf(database.query('SELECT * FROM no_such_table'));
      expect((error as { code?: string }).code).toBe('42P01');
      expect(isDatabaseUnavailable(error)).toBe(false);
    } finally {
      await database.close();
    }
    expect(isDatabaseUnavailable(new Error('something else'))).toBe(false);
    expect(isDatabaseUnavailable('ECONNREFUSED')).toBe(false);
  });

  it.skipIf(!ON_POSTGRES)('detects a terminated backend', async () => {
    const victim = new pg.Client({ connectionString: TEST_DATABASE_URL });
    const admin = new pg.Client({ connectionString: TEST_DATABASE_URL });
    // The terminated session also emits 'error' on its client, which would otherwise be uncaught.
    victim.on('error', () => {});
    await victim.connect();
    await admin.connect();
    try {
      const pid = (await victim.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows[0].pid;
      const slow = rejectionOf(victim.query('SELECT pg_sleep(30)'));
      await admin.query('SELECT pg_terminate_backend($1)', [pid]);
      const error = await slow;
      expect((error as { code?: string }).code).toBe('57P01');
      expect(isDatabaseUnavailable(error)).toBe(true);
      const next = await rejectionOf(victim.query('SELECT 1'));
      expect(isDatabaseUnavailable(next)).toBe(true);
    } finally {
      await admin.end();
      await victim.end().catch(() => {});
    }
  });
});
