import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connectDatabase, type DatabaseConnection } from '@/db/client';
import { lockBlobs } from '@/server/registry/files';
import { createTestDatabase, ON_POSTGRES } from '../support/database';

// Advisory locks wait only between connections, and PGlite has one, so this runs on PostgreSQL only.
describe.skipIf(!ON_POSTGRES)('lockBlobs', () => {
  let connection: DatabaseConnection;
  let url: string;
  let drop: () => Promise<void>;

  beforeAll(async () => {
    const database = await createTestDatabase();
    url = database.url;
    drop = database.drop;
    connection = await connectDatabase({ databaseUrl: url, pgliteDir: '' });
  });

  afterAll(async () => {
    await connection?.close();
    await drop?.();
  });

  it('takes the locks in key order', async () => {
    const holder = new pg.Client({ connectionString: url });
    await holder.connect();
    try {
      const addresses = ['blake3:first', 'blake3:second'];
      const { rows } = await holder.query<{ address: string; key: string }>(
        `SELECT address, hashtextextended(address, 0)::text AS key FROM unnest($1::text[]) AS address ORDER BY hashtextextended(address, 0)`,
        [addresses],
      );
      const [lower, higher] = rows;

      // The holder takes the higher key; the transaction under test gets the lower one and waits for the higher.
      await holder.query('BEGIN');
      await holder.query('SELECT pg_advisory_xact_lock($1::bigint)', [higher.key]);
      const locking = connection.db.transaction((tx) => lockBlobs(tx, [higher.address, lower.address]));
      const waiting = async () => {
        const result = await holder.query(`SELECT count(*)::int AS waiting FROM pg_locks WHERE locktype = 'advisory' AND NOT granted`);
        return result.rows[0].waiting;
      };
      await expect.poll(waiting, { timeout: 10_000 }).toBe(1);

      const lowerFree = await holder.query('SELECT pg_try_advisory_xact_lock($1::bigint) AS taken', [lower.key]);
      expect(lowerFree.rows[0].taken).toBe(false);

      await holder.query('COMMIT');
      await locking;
    } finally {
      await holder.end();
    }
  });
});
