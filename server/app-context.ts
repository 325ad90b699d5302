import type { Logger } from 'pino';
import { connectDatabase, type Database, type DatabaseConnection } from '@/db/client';
import { getLogger } from './logger';
import { getSettings, type Settings } from './settings';
import type { Backend } from './storage/backend';
import { configureWriteCopies, openStorageBackends } from './integrity/replicas';
import { ensureEventChain } from './integrity/event-chain-store';
import { EventHub } from './registry/event-hub';
import { loadRetentionClasses, syncRetentionClasses, type RetentionClass } from './registry/retention-classes';

/** Everything a request needs, created once per process. */
export interface AppContext {
  settings: Settings;
  connection: DatabaseConnection;
  db: Database;
  log: Logger;
  /** The backend that receives new blobs. */
  primaryBackend: Backend;
  /** Backends that new blobs are copied to, in order, until `copies` copies exist. */
  copyTargets: Backend[];
  /** The number of copies of each new blob, the primary's included. */
  copies: number;
  /** Every configured backend by id, the primary first. */
  backends: Map<string, Backend>;
  eventHub: EventHub;
  retentionClasses: RetentionClass[];
}

const globalForApp = globalThis as typeof globalThis & { artifactStoreApp?: Promise<AppContext> };

/**
 * Returns the process's context, creating it on first use: connects the database and applies migrations,
 * loads the retention classes, opens the storage backend and removes temporary files a crash left behind.
 * The promise lives on globalThis so Next.js dev reloads and separate route bundles share one instance.
 */
export function getAppContext(): Promise<AppContext> {
  globalForApp.artifactStoreApp ??= createAppContext().catch((error: unknown) => {
    globalForApp.artifactStoreApp = undefined;
    throw error;
  });
  return globalForApp.artifactStoreApp;
}

async function createAppContext(): Promise<AppContext> {
  const settings = getSettings();
  const log = getLogger();
  const retentionClasses = loadRetentionClasses(settings.RETENTION_CLASSES_FILE);

  const connection = await connectDatabase({ databaseUrl: settings.DATABASE_URL, pgliteDir: settings.pgliteDir, log });
  log.info({ database: connection.kind }, 'database connected and migrations applied');
  await syncRetentionClasses(connection.db, retentionClasses);
  const chained = await ensureEventChain(connection.db);
  if (chained > 0) log.info({ events: chained }, 'computed the hash chain of events written before it existed');

  const storage = openStorageBackends(settings);
  const primaryBackend = storage.primary;
  for (const backend of storage.all.values()) {
    // A backend that fails here is reported by /health; it must not keep the server from starting.
    try {
      const removed = await backend.recoverTemporaryFiles();
      for (const file of removed) log.warn({ backend_id: backend.id, file }, 'removed a temporary file left by an interrupted write');
    } catch (error) {
      log.error({ err: error, backend_id: backend.id }, 'failed to remove temporary files left by interrupted writes; the next start retries');
    }
  }
  configureWriteCopies(storage.copyTargets, storage.copies);

  const eventHub = await EventHub.start(connection, log);
  return {
    settings,
    connection,
    db: connection.db,
    log,
    primaryBackend,
    copyTargets: storage.copyTargets,
    copies: storage.copies,
    backends: storage.all,
    eventHub,
    retentionClasses,
  };
}

/** Ends the waits of long polls and SSE streams, when a context was started; see EventHub.stop. */
export function stopEventWaiters(): void {
  globalForApp.artifactStoreApp?.then((app) => app.eventHub.stop()).catch(() => undefined);
}

/** Closes the database; used by tests and command-line tools that create a context. */
export async function closeAppContext(): Promise<void> {
  const pending = globalForApp.artifactStoreApp;
  globalForApp.artifactStoreApp = undefined;
  if (pending) await (await pending).connection.close();
}
