/**
 * Runs a retention sweep from the command line and prints its report as JSON.
 *
 *   npm run retention -- sweep [--dry-run]
 *
 * It uses the same settings as the server (DATABASE_URL, or the embedded database under DATA_DIR, and
 * STORAGE_ROOT). The embedded database allows one process at a time, so with it stop the server first,
 * or use POST /api/v1/retention/sweep with an admin token while it runs.
 */
import { parseArgs } from 'node:util';
import pino from 'pino';
import { connectDatabase } from '../db/client';
import { sweepRetention } from '../server/registry/retention-sweep';
import { getSettings } from '../server/settings';
import { openStorageBackends } from '../server/integrity/replicas';

const USAGE = 'usage: npm run retention -- sweep [--dry-run]';

async function main(): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({ allowPositionals: true, options: { 'dry-run': { type: 'boolean', default: false } } });
  } catch (error) {
    console.error(`${(error as Error).message}\n${USAGE}`);
    return 2;
  }
  if (parsed.positionals.length !== 1 || parsed.positionals[0] !== 'sweep') {
    console.error(USAGE);
    return 2;
  }

  const settings = getSettings();
  // Log lines go to stderr so that stdout carries only the report.
  const log = pino({ level: settings.LOG_LEVEL, base: { service: 'artifact-store-retention' } }, pino.destination(2));
  let connection: Awaited<ReturnType<typeof connectDatabase>>;
  try {
    connection = await connectDatabase({ databaseUrl: settings.DATABASE_URL, pgliteDir: settings.pgliteDir });
  } catch (error) {
    console.error(`Opening the database failed: ${(error as Error).message}`);
    return 1;
  }
  try {
    const report = await sweepRetention(
      { db: connection.db, backends: openStorageBackends(settings).all, log, settings },
      { dryRun: parsed.values['dry-run'] ?? false, actor: `cli:${process.env.USER ?? 'unknown'}` },
    );
    console.log(JSON.stringify(report, null, 2));
    return 0;
  } catch (error) {
    console.error(`retention sweep failed: ${(error as Error).message}`);
    return 1;
  } finally {
    await connection.close();
  }
}

process.exitCode = await main();
