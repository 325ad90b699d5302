import { Gauge, Registry } from 'prom-client';
import type { AppContext } from '../app-context';
import { headSequence } from '../registry/events';
import { checkHealth } from '../registry/health';
import { getMetrics, METRIC_PREFIX } from './registry';

export interface MetricsExposition {
  contentType: string;
  body: string;
}

type ScrapeContext = Pick<AppContext, 'connection' | 'db' | 'backends' | 'primaryBackend' | 'copyTargets' | 'copies' | 'eventHub'>;

/**
 * Returns every metric in the Prometheus text format: the process's counters and histograms, and
 * gauges read now (event log head, event waiters, database and storage health, failed stored copies).
 * Storage space and the failed copy count come from the same checks as GET /health, each limited to
 * 3 s. A reading that needs the database is left out while the database does not respond, and
 * `database_up` is then 0.
 */
export async function renderMetrics(app: ScrapeContext): Promise<MetricsExposition> {
  const { registry } = getMetrics();
  const readings = await readStateGauges(app);
  const merged = Registry.merge([registry, readings]);
  return { contentType: merged.contentType, body: await merged.metrics() };
}

/** Builds a registry of this scrape's state gauges; it is discarded after the scrape. */
async function readStateGauges(app: ScrapeContext): Promise<Registry> {
  const registers = [new Registry()];
  const health = await checkHealth(app.connection, app);
  const databaseOk = health.database.status === 'ok';

  new Gauge({
    name: `${METRIC_PREFIX}database_up`,
    help: 'Whether the database responded at scrape time (1) or not (0).',
    registers,
  }).set(databaseOk ? 1 : 0);

  const head = databaseOk ? await readHeadSequence(app) : undefined;
  const eventLogHead = new Gauge({
    name: `${METRIC_PREFIX}event_log_head_sequence`,
    help: 'Sequence number of the newest committed event, read at scrape time; absent while the database does not respond.',
    registers,
  });
  if (head === undefined) eventLogHead.remove();
  else eventLogHead.set(head);

  const failedLocations = new Gauge({
    name: `${METRIC_PREFIX}storage_failed_locations`,
    help: 'Stored copies whose last check found them corrupt or missing, read at scrape time; absent while the database does not respond.',
    registers,
  });
  if (databaseOk) failedLocations.set(health.failed_storage_locations);
  else failedLocations.remove();

  const labelNames = ['backend'] as const;
  const storageUp = new Gauge({
    name: `${METRIC_PREFIX}storage_backend_up`,
    help: 'Whether the storage backend passed its health check at scrape time (1) or not (0).',
    labelNames,
    registers,
  });
  const storageFree = new Gauge({
    name: `${METRIC_PREFIX}storage_free_bytes`,
    help: 'Free bytes on the storage backend at scrape time; absent while the backend is unavailable.',
    labelNames,
    registers,
  });
  const storageTotal = new Gauge({
    name: `${METRIC_PREFIX}storage_total_bytes`,
    help: 'Size in bytes of the storage backend at scrape time; absent while the backend is unavailable.',
    labelNames,
    registers,
  });
  for (const backend of health.backends) {
    const labels = { backend: backend.id };
    storageUp.set(labels, backend.status === 'ok' ? 1 : 0);
    if (backend.free_bytes !== null) storageFree.set(labels, backend.free_bytes);
    if (backend.total_bytes !== null) storageTotal.set(labels, backend.total_bytes);
  }

  const waiters = new Gauge({
    name: `${METRIC_PREFIX}event_waiters`,
    help: 'Open long polls (kind long_poll, GET /events) and event streams (kind sse, GET /events/stream) that wait for new events.',
    labelNames: ['kind'] as const,
    registers,
  });
  for (const [kind, count] of Object.entries(app.eventHub.waiterCountsByKind)) {
    waiters.set({ kind }, count);
  }

  return registers[0];
}

async function readHeadSequence(app: Pick<AppContext, 'db'>): Promise<number | undefined> {
  try {
    return await headSequence(app.db);
  } catch {
    // The database stopped responding after the health check; database_up already reports the outage.
    return undefined;
  }
}
