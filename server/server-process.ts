import { getAppContext } from './app-context';
import { scheduleRetentionSweeps } from './registry/retention-schedule';

/** Creates the process's context at server start and starts the background jobs: the retention sweep schedule. */
export async function startServerProcess(): Promise<void> {
  const app = await getAppContext();
  app.log.info({ storage_root: app.settings.storageRoot, database: app.connection.kind }, 'artifact-store started');
  scheduleRetentionSweeps(app, app.settings.SWEEP_INTERVAL_SECONDS);
}
