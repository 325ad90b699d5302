import type { AppContext } from '../app-context';
import { headSequence } from '../registry/events';
import { checkHealth } from '../registry/health';
import { getMetrics } from './registry';

export interface MetricsExposition {
  contentType: string;
  body: string;
}

/**
 * Sets the gauges that describe current state (event log head, event waiters, database and storage
 * health, failed stored copies) and returns every metric in the Prometheus text format. Storage space
 * and the failed copy count come from the same checks as GET /health, each limited to 3 s.
 */
export async function renderMetrics(app: Pick<AppContext, 'connection' | 'db' | 'backends' | 'eventHub'>): Promise<MetricsExposition> {
  const metrics = getMetrics();

  const health = await checkHealth(app.connection, app.backends.values());
  metrics.databaseUp.set(health.database.status === 'ok' ? 1 : 0);
  const databaseOk = health.database.status === 'ok';
  // Values read from the database are NaN while it does not answer, so a stale or zero value cannot be mistaken for a reading.
  metrics.storageFailedLocations.set(databaseOk ? health.failed_storage_locations : Number.NaN);

  metrics.storageUp.reset();
  metrics.storageFreeBytes.reset();
  metrics.storageTotalBytes.reset();
  for (const backend of health.backends) {
    const labels = { backend: backend.id };
    metrics.storageUp.set(labels, backend.status === 'ok' ? 1 : 0);
    if (backend.free_bytes !== null) metrics.storageFreeBytes.set(labels, backend.free_bytes);
    if (backend.total_bytes !== null) metrics.storageTotalBytes.set(labels, backend.total_bytes);
  }

  metrics.eventLogHeadSequence.set(databaseOk ? await readHeadSequence(app) : Number.NaN);

  for (const [kind, count] of Object.entries(app.eventHub.waiterCountsByKind)) {
    metrics.eventWaiters.set({ kind }, count);
  }

  return { contentType: metrics.registry.contentType, body: await metrics.registry.metrics() };
}

async function readHeadSequence(app: Pick<AppContext, 'db'>): Promise<number> {
  try {
    return await headSequence(app.db);
  } catch {
    // The database stopped answering after the health check; databaseUp already reports the outage.
    return Number.NaN;
  }
}
