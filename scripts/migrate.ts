/**
 * Applies the committed database migrations once and exits, for deploy pipelines that migrate before
 * they start or replace app instances.
 *
 *   npm run migrate
 *
 * It uses the server's settings (DATABASE_URL, or the embedded database under DATA_DIR). On PostgreSQL the
 * migrations run under the advisory lock that server start-up takes too, so running it while instances
 * start is safe. It also fills in the event hash chain of a database written before the chain existed.
 * Exit status: 0 when the schema is current, 1 when opening or migrating the database failed.
 */
import { sql } from 'drizzle-orm';
import { connectDatabase, rowsOf } from '../db/client';
import { ensureEventChain } from '../server/integrity/event-chain-store';
import { getSettings } from '../server/settings';

async function main(): Promise<number> {
  const settings = getSettings();
  let connection: Awaited<ReturnType<typeof connectDatabase>>;
  try {
    connection = await connectDatabase({ databaseUrl: settings.DATABASE_URL, pgliteDir: settings.pgliteDir });
  } catch (error) {
    console.error(`Opening or migrating the database failed: ${(error as Error).message}`);
    return 1;
  }
  try {
    const chained = await ensureEventChain(connection.db);
    const [applied] = rowsOf<{ count: string | number }>(await connection.db.execute(sql`SELECT count(*) AS count FROM drizzle.__drizzle_migrations`));
    console.log(`The ${connection.kind} database has ${Number(applied.count)} migrations applied.`);
    if (chained > 0) console.log(`Computed the hash chain of ${chained} events written before it existed.`);
    return 0;
  } catch (error) {
    console.error(`Migrating the database failed: ${(error as Error).message}`);
    return 1;
  } finally {
    await connection.close();
  }
}

process.exitCode = await main();
