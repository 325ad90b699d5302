import type { Logger } from 'pino';
import type { Database } from '@/db/client';
import type { AppContext } from '../app-context';
import { getMetrics } from '../metrics/registry';
import { endUpload, listExpiredUploads } from './records';
import { forgetDigestState, removeStagingFiles } from './store';
import { uploadStagingDirectory } from './tus-server';

/** The actor recorded on `upload.expired` events, which no request causes. */
export const UPLOAD_CLEANUP_ACTOR = 'system:upload-cleanup';

/**
 * Ends every unfinished upload whose expiry time has passed: marks its row ended with `upload.expired`,
 * which frees its path, then deletes its staging file and sidecar. Finished uploads are never touched.
 * Returns the ids removed. A failure on one upload is logged and the others still run.
 */
export async function cleanupExpiredUploads(db: Database, stagingDirectory: string, log: Logger, now = new Date()): Promise<string[]> {
  const removed: string[] = [];
  for (const row of await listExpiredUploads(db, now)) {
    try {
      // NOTE: this takes no tus lock; a PATCH already writing when the upload expires fails at
      // completion, because completion requires the row to be unfinished.
      if (!(await endUpload(db, row.id, 'upload.expired', UPLOAD_CLEANUP_ACTOR))) continue;
      getMetrics().tusUploadsAbandoned.inc({ reason: 'expired' });
      forgetDigestState(row.id);
      await removeStagingFiles(stagingDirectory, row.id);
      removed.push(row.id);
      log.info({ upload_id: row.id, package_id: row.packageId, expired_at: row.expiresAt.toISOString() }, 'removed an expired upload');
    } catch (error) {
      log.error({ err: error, upload_id: row.id }, 'failed to remove an expired upload');
    }
  }
  return removed;
}

/** Removes expired unfinished uploads every `intervalSeconds` with an unref'd timer; 0 turns the job off. */
export function scheduleUploadCleanup(app: AppContext, intervalSeconds: number): void {
  if (intervalSeconds === 0) return;
  const stagingDirectory = uploadStagingDirectory(app);
  let running = false;
  const timer = setInterval(() => {
    if (running) return;
    running = true;
    cleanupExpiredUploads(app.db, stagingDirectory, app.log)
      .catch((error: unknown) => app.log.error({ err: error }, 'expired upload cleanup failed'))
      .finally(() => (running = false));
  }, intervalSeconds * 1000);
  timer.unref();
}
