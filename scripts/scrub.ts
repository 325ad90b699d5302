/**
 * Runs a fixity scrub from the command line and prints its report as JSON.
 *
 *   npm run scrub -- --all
 *   npm run scrub -- --package ID
 *
 * It uses the server's settings (DATABASE_URL or the embedded database under DATA_DIR, BACKENDS_FILE or
 * STORAGE_ROOT and the other storage variables, SCRUB_RATE_MB_PER_S). The embedded database allows one process at a time, so with
 * it stop the server first, or use POST /api/v1/scrub with an admin token while it runs. Exit status: 0
 * when every copy checked is ok or was repaired, 3 when a copy stays corrupt or missing, 2 for invalid
 * arguments, 1 for any other failure.
 */
import { parseArgs } from 'node:util';
import pino from 'pino';
import { connectDatabase } from '../db/client';
import { ensureEventChain } from '../server/integrity/event-chain-store';
import { openStorageBackends } from '../server/integrity/replicas';
import { scrubStorage } from '../server/integrity/scrub';
import { scrubRates } from '../server/integrity/scrub-schedule';
import { getSettings } from '../server/settings';

const USAGE = 'usage: npm run scrub -- --all | --package ID';

async function main(): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({ options: { all: { type: 'boolean', default: false }, package: { type: 'string' } } });
  } catch (error) {
    console.error(`${(error as Error).message}\n${USAGE}`);
    return 2;
  }
  const { all, package: packageId } = parsed.values;
  if (all === (packageId !== undefined)) {
    console.error(`Give exactly one of --all and --package.\n${USAGE}`);
    return 2;
  }

  const settings = getSettings();
  // Log lines go to stderr so that stdout carries only the report.
  const log = pino({ level: settings.LOG_LEVEL, base: { service: 'artifact-store-scrub' } }, pino.destination(2));
  let connection: Awaited<ReturnType<typeof connectDatabase>>;
  try {
    connection = await connectDatabase({ databaseUrl: settings.DATABASE_URL, pgliteDir: settings.pgliteDir });
  } catch (error) {
    console.error(`Opening the database failed: ${(error as Error).message}`);
    return 1;
  }
  try {
    await ensureEventChain(connection.db);
    const storage = openStorageBackends(settings);
    const report = await scrubStorage(
      {
        db: connection.db,
        connection,
        backends: storage.all,
        log,
        ...scrubRates(settings),
        copyPlan: { backends: [storage.primary, ...storage.copyTargets], copies: storage.copies },
      },
      { packageId, actor: `cli:${process.env.USER ?? 'unknown'}` },
    );
    console.log(JSON.stringify(report, null, 2));
    const repairedKeys = new Set(report.repaired.map((item) => `${item.content_address} ${item.backend_id}`));
    const unresolved = [...report.corrupt, ...report.missing].filter((item) => !repairedKeys.has(`${item.content_address} ${item.backend_id}`));
    for (const item of unresolved) console.error(`failed copy: ${item.content_address} on ${item.backend_id}: ${item.detail}`);
    return unresolved.length > 0 ? 3 : 0;
  } catch (error) {
    console.error(`scrub failed: ${(error as Error).message}`);
    return 1;
  } finally {
    await connection.close();
  }
}

process.exitCode = await main();
