import { getAppContext } from './app-context';
import { scheduleScrubs } from './integrity/scrub-schedule';
import { scheduleRetentionSweeps } from './registry/retention-schedule';
import { scheduleUploadCleanup } from './uploads/cleanup';

/** Creates the process's context at server start and starts the background jobs: retention sweeps, fixity scrubs and the expired upload cleanup. */
export async function startServerProcess(): Promise<void> {
  const app = await getAppContext();
  app.log.info(
    { backends: [...app.backends.keys()], primary_backend: app.primaryBackend.id, copies: app.copies, database: app.connection.kind },
    'artifact-store started',
  );
  scheduleRetentionSweeps(app, app.settings.SWEEP_INTERVAL_SECONDS);
  scheduleScrubs(
    { db: app.db, connection: app.connection, backends: app.backends, log: app.log, copyPlan: { backends: [app.primaryBackend, ...app.copyTargets], copies: app.copies } },
    app.settings,
  );
  scheduleUploadCleanup(app, app.settings.SWEEP_INTERVAL_SECONDS);
}
