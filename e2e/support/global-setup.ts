import path from 'node:path';
import buildIfStale from '../../tests/support/global-setup';
import { createTestEnvironment, startServer } from '../../tests/support/server';

/**
 * Builds the app into .next-e2e when its sources changed, then starts one server for the whole run on a
 * fresh PGlite data directory. Tokens are created before the server starts because PGlite allows one
 * process at a time. The retention classes are the shipped defaults plus `scratch` (1 hour 30 minutes),
 * so the console's display of durations shorter than a day is tested. Returns the teardown that stops
 * the server and removes the directory.
 */
export default async function globalSetup(): Promise<() => Promise<void>> {
  process.env.NEXT_DIST_DIR = '.next-e2e';
  buildIfStale();

  const environment = await createTestEnvironment({
    RETENTION_CLASSES_FILE: path.resolve(import.meta.dirname, 'retention-classes.json'),
  });
  const readToken = await environment.createToken('e2e-reader', ['read']);
  const server = await startServer(environment);

  process.env.E2E_BASE_URL = server.url;
  process.env.E2E_ADMIN_TOKEN = environment.adminToken;
  process.env.E2E_ADMIN_NAME = 'test-admin';
  process.env.E2E_READ_TOKEN = readToken;
  process.env.E2E_READ_NAME = 'e2e-reader';

  return async () => {
    await server.stop();
    await environment.cleanup();
  };
}
