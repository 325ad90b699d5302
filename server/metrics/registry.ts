/**
 * The process's Prometheus metrics, updated where the work happens. The gauges that describe state
 * (event log head, storage space, failed copies, waiters) are read at scrape time instead, in
 * `server/metrics/scrape.ts`. Every name starts with `artifact_store_` and uses base units.
 */
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import { droppedLogLineCount } from '../logger';

export const METRIC_PREFIX = 'artifact_store_';

/** Transport of uploaded file bytes: a raw PUT body, a multipart/form-data part, or a tus PATCH (or creation-with-upload POST). */
export type UploadProtocol = 'raw_put' | 'multipart' | 'tus';

/** Why a tus write failed: its Upload-Checksum did not match, the body or staging file failed, or recording the finished file failed. */
export type TusWriteFailure = 'checksum_mismatch' | 'write_error' | 'completion_error';

function createMetrics() {
  const registry = new Registry();
  // The default process and Node.js metrics keep their standard unprefixed names (process_*, nodejs_*),
  // which ready-made dashboards expect.
  collectDefaultMetrics({ register: registry });
  const registers = [registry];

  return {
    registry,

    httpRequests: new Counter({
      name: `${METRIC_PREFIX}http_requests_total`,
      help: 'HTTP requests handled by the API, by route template, method and status; counted when the response body ends.',
      labelNames: ['route', 'method', 'status'] as const,
      registers,
    }),
    httpRequestDuration: new Histogram({
      name: `${METRIC_PREFIX}http_request_duration_seconds`,
      help: 'Time from the start of an API request until its response body ended or the client went away, by route template, method and status.',
      labelNames: ['route', 'method', 'status'] as const,
      // Long polls wait up to 30 s; uploads, downloads and event streams can take minutes.
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300],
      registers,
    }),

    uploadBytesReceived: new Counter({
      name: `${METRIC_PREFIX}upload_bytes_received_total`,
      help: 'File content bytes read from upload request bodies as they arrive, including those of uploads that later failed.',
      labelNames: ['protocol'] as const,
      registers,
    }),
    downloadBytesSent: new Counter({
      name: `${METRIC_PREFIX}download_bytes_sent_total`,
      help: 'Stored content bytes (files and manifests) handed to the HTTP server as the client reads them; a download cut off early counts what was sent.',
      registers,
    }),
    uploadsInProgress: new Gauge({
      name: `${METRIC_PREFIX}uploads_in_progress`,
      help: 'Upload requests currently receiving file bytes.',
      labelNames: ['protocol'] as const,
      registers,
    }),

    tusUploadsCompleted: new Counter({
      name: `${METRIC_PREFIX}tus_uploads_completed_total`,
      help: 'tus uploads whose last byte arrived and that were recorded as a file of their package.',
      registers,
    }),
    tusWriteFailures: new Counter({
      name: `${METRIC_PREFIX}tus_write_failures_total`,
      help: 'tus PATCH (or creation-with-upload) writes that failed, by reason.',
      labelNames: ['reason'] as const,
      registers,
    }),
    tusUploadsAbandoned: new Counter({
      name: `${METRIC_PREFIX}tus_uploads_abandoned_total`,
      help: 'Unfinished tus uploads that ended without a file, by reason (terminated by the client, or expired).',
      labelNames: ['reason'] as const,
      registers,
    }),

    digestBytes: new Counter({
      name: `${METRIC_PREFIX}digest_bytes_total`,
      help: 'Bytes hashed with both BLAKE3 and SHA-256 (uploads, finalize, scrub, replica copies).',
      registers,
    }),
    digestSeconds: new Counter({
      name: `${METRIC_PREFIX}digest_seconds_total`,
      help: 'Time spent in the BLAKE3 and SHA-256 hash calls counted by digest_bytes_total.',
      registers,
    }),

    scrubCopiesChecked: new Counter({
      name: `${METRIC_PREFIX}scrub_copies_checked_total`,
      help: 'Stored copies that the fixity scrub read and compared with their digests.',
      registers,
    }),
    scrubBytesRead: new Counter({
      name: `${METRIC_PREFIX}scrub_bytes_read_total`,
      help: 'Bytes the fixity scrub read for checks and repairs.',
      registers,
    }),
    scrubFailures: new Counter({
      name: `${METRIC_PREFIX}scrub_failures_total`,
      help: 'Stored copies that the fixity scrub found corrupt or missing, by status.',
      labelNames: ['status'] as const,
      registers,
    }),
    scrubRepairs: new Counter({
      name: `${METRIC_PREFIX}scrub_repairs_total`,
      help: 'Repairs of failed copies attempted by the fixity scrub, by result (repaired or failed).',
      labelNames: ['result'] as const,
      registers,
    }),

    retentionSweeps: new Counter({
      name: `${METRIC_PREFIX}retention_sweeps_total`,
      help: 'Retention sweeps that ran (dry runs excluded), by result (success or error).',
      labelNames: ['result'] as const,
      registers,
    }),
    retentionDeletions: new Counter({
      name: `${METRIC_PREFIX}retention_deletions_total`,
      help: 'What retention sweeps removed, by kind: package (deleted to a tombstone), blob (content no longer referenced) or orphan_object (stored object without a row).',
      labelNames: ['kind'] as const,
      registers,
    }),

    logLinesDropped: new Counter({
      name: `${METRIC_PREFIX}log_lines_dropped_total`,
      help: 'Log lines dropped because stdout did not accept them while 16 MiB of lines waited in memory.',
      registers,
      collect() {
        this.reset();
        this.inc(droppedLogLineCount());
      },
    }),
  };
}

export type Metrics = ReturnType<typeof createMetrics>;

const globalForMetrics = globalThis as typeof globalThis & { artifactStoreMetrics?: Metrics };

/**
 * Returns the process's metrics, creating them on first use. They live on globalThis because Next.js
 * loads server modules in several bundles (instrumentation, each route), and a registry per bundle would
 * split the counts and register the default process metrics twice.
 */
export function getMetrics(): Metrics {
  globalForMetrics.artifactStoreMetrics ??= createMetrics();
  return globalForMetrics.artifactStoreMetrics;
}
