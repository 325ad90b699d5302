import { sql, type SQL } from 'drizzle-orm';
import { rowsOf, type DatabaseConnection } from '@/db/client';
import { storageLocations } from '@/db/schema';
import type { Backend } from '../storage/backend';
import { z } from 'zod';

/** A storage backend with its health; `detail` says why it is unavailable. */
export const BackendReport = z.object({
  id: z.string(),
  kind: z.string(),
  retrieval_tier: z.string(),
  role: z.enum(['primary', 'copy', 'read']).meta({
    description:
      '`primary` receives new blobs first; new blobs are copied to `copy` backends in configuration order until the configured number of copies exists; a `read` backend is read and repaired but receives no new blobs.',
  }),
  status: z.enum(['ok', 'unavailable']),
  free_bytes: z.number().int().nullable(),
  total_bytes: z.number().int().nullable(),
  detail: z.string().optional(),
});
export type BackendReport = z.infer<typeof BackendReport>;

/** GET /backends: every storage backend, in one page. */
export const BackendList = z.object({ backends: z.array(BackendReport), next_cursor: z.null() });
export type BackendList = z.infer<typeof BackendList>;

/** GET /health: the database, each backend and the count of storage locations marked corrupt or missing. */
export const HealthReport = z.object({
  status: z.enum(['ok', 'degraded']),
  database: z.object({ status: z.enum(['ok', 'unavailable']), kind: z.string() }),
  backends: z.array(BackendReport),
  failed_storage_locations: z.number().int().min(0),
});
export type HealthReport = z.infer<typeof HealthReport>;

const CHECK_TIMEOUT_MS = 3000;

function withTimeout<T>(promise: Promise<T>, what: string): Promise<T> {
  return Promise.race([
    promise,
    new Promise<T>((_, reject) => setTimeout(() => reject(new Error(`${what} timed out after ${CHECK_TIMEOUT_MS} ms`)), CHECK_TIMEOUT_MS).unref()),
  ]);
}

/** The configured backends and how new blobs are written to them. */
export interface BackendSet {
  /** Every backend by id, the primary first. */
  backends: Map<string, Backend>;
  primaryBackend: Backend;
  /** The backends new blobs are copied to, in order, until `copies` copies exist. */
  copyTargets: Backend[];
  copies: number;
}

function roleOf(set: BackendSet, backend: Backend): BackendReport['role'] {
  if (backend.id === set.primaryBackend.id) return 'primary';
  // Every copy target may receive copies: the first `copies - 1` of them normally, later ones when an earlier one is unavailable.
  return set.copies > 1 && set.copyTargets.some((target) => target.id === backend.id) ? 'copy' : 'read';
}

/** Checks every backend at once, each within 3 s; a failed or slow check is reported as unavailable. */
export async function reportBackends(set: BackendSet): Promise<BackendReport[]> {
  return Promise.all(
    [...set.backends.values()].map(async (backend): Promise<BackendReport> => {
      const role = roleOf(set, backend);
      try {
        const health = await withTimeout(backend.health(), `backend ${backend.id} health check`);
        return {
          id: backend.id,
          kind: backend.kind,
          retrieval_tier: backend.retrievalTier,
          role,
          status: health.ok ? 'ok' : 'unavailable',
          free_bytes: health.freeBytes,
          total_bytes: health.totalBytes,
          ...(health.detail ? { detail: health.detail } : {}),
        };
      } catch (error) {
        return {
          id: backend.id,
          kind: backend.kind,
          retrieval_tier: backend.retrievalTier,
          role,
          status: 'unavailable',
          free_bytes: null,
          total_bytes: null,
          detail: (error as Error).message,
        };
      }
    }),
  );
}

/** Returns the query that counts the storage locations marked corrupt or missing, which a partial index contains. */
export function failedLocationsQuery(): SQL {
  return sql`SELECT count(*) AS failed FROM ${storageLocations} WHERE ${storageLocations.status} <> 'ok'`;
}

/** Checks the database and every backend; degraded when any is unavailable or a stored copy failed a check. */
export async function checkHealth(connection: DatabaseConnection, backends: BackendSet): Promise<HealthReport> {
  let databaseOk = true;
  let failed = 0;
  try {
    await withTimeout(connection.ping(), 'database ping');
    const [row] = rowsOf<{ failed: string | number }>(await connection.db.execute(failedLocationsQuery()));
    failed = Number(row.failed);
  } catch {
    databaseOk = false;
  }
  const backendReports = await reportBackends(backends);
  const degraded = !databaseOk || failed > 0 || backendReports.some((report) => report.status !== 'ok');
  return {
    status: degraded ? 'degraded' : 'ok',
    database: { status: databaseOk ? 'ok' : 'unavailable', kind: connection.kind },
    backends: backendReports,
    failed_storage_locations: failed,
  };
}
