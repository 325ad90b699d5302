import { getAppContext } from './app-context';

/** Creates the process's context at server start; background jobs are started from here. */
export async function startServerProcess(): Promise<void> {
  const app = await getAppContext();
  app.log.info({ storage_root: app.settings.storageRoot, database: app.connection.kind }, 'artifact-store started');
}
