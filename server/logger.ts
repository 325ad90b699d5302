import pino, { type DestinationStream, type Logger } from 'pino';
import { getSettings } from './settings';

/**
 * Maximum bytes of log lines that wait in memory while stdout does not accept them (a stalled log
 * collector or pipe). Lines beyond it are dropped and counted, so a blocked stdout cannot grow the
 * process until it runs out of memory.
 */
export const LOG_BUFFER_MAX_BYTES = 16 * 1024 * 1024;
/** How long after a dropped line the count of dropped lines is logged. */
const DROPPED_LINES_REPORT_MS = 5000;

const globalForLogger = globalThis as typeof globalThis & {
  artifactStoreLogger?: Logger;
  /** Lines dropped since the process started, for the metric. */
  artifactStoreDroppedLogLines?: number;
};

/** The process-wide pino logger; request handlers log through `logger.child({ request_id, actor })`. */
export function getLogger(): Logger {
  globalForLogger.artifactStoreLogger ??= createLogger(getSettings().LOG_LEVEL, process.stdout.fd ?? 1, LOG_BUFFER_MAX_BYTES);
  return globalForLogger.artifactStoreLogger;
}

const ERROR_CLASS_NAME = /^[A-Z][A-Za-z0-9]*Error$/;

/**
 * Serializes an error as pino does, but takes `type` from the error's `name` when that looks like a
 * class name. pino reports `constructor.name`, which the production build minifies to a letter, so this
 * project's error classes set `name` explicitly. node-postgres sets `name` to `error`, which is not a
 * class name, so its errors keep their constructor's name.
 */
function serializeError(error: unknown): unknown {
  const serialized = pino.stdSerializers.err(error as Error);
  const name = (error as { name?: unknown } | null)?.name;
  if (serialized && typeof serialized === 'object' && typeof name === 'string' && ERROR_CLASS_NAME.test(name)) serialized.type = name;
  return serialized;
}

/** Returns how many log lines the process dropped because its output was blocked. */
export function droppedLogLineCount(): number {
  return globalForLogger.artifactStoreDroppedLogLines ?? 0;
}

/**
 * Creates a logger that writes to `fd` asynchronously and keeps at most `maxBufferedBytes` of lines
 * that the fd has not accepted yet. Each dropped line is counted. `reportDelayMs` after a drop the
 * logger reports how many lines it dropped. While the fd stays blocked, that report is dropped as well,
 * uncounted, and tried again after the same delay, so the count reaches the log once the fd recovers.
 */
export function createLogger(level: string, fd: number, maxBufferedBytes: number, reportDelayMs = DROPPED_LINES_REPORT_MS): Logger {
  const destination = pino.destination({ dest: fd, sync: false, maxLength: maxBufferedBytes });
  const logger = pino(
    {
      level,
      base: { service: 'artifact-store' },
      redact: { paths: ['token', 'authorization', 'headers.authorization', 'cookie'], censor: '[redacted]' },
      serializers: { err: serializeError },
    },
    destination as DestinationStream,
  );

  let unreported = 0;
  let report: NodeJS.Timeout | undefined;
  let reporting = false;
  let reportDropped = false;
  const scheduleReport = () => {
    report ??= setTimeout(reportDroppedLines, reportDelayMs).unref();
  };
  // pino writes a line to the destination synchronously, so a dropped report emits 'drop' within warn().
  const reportDroppedLines = () => {
    report = undefined;
    reporting = true;
    reportDropped = false;
    logger.warn({ dropped_lines: unreported, max_buffered_bytes: maxBufferedBytes }, 'log lines were dropped because the log output did not accept them');
    reporting = false;
    // The output is still blocked, so the count is kept for the next report.
    if (reportDropped) scheduleReport();
    else unreported = 0;
  };
  destination.on('drop', () => {
    if (reporting) {
      reportDropped = true;
      return;
    }
    globalForLogger.artifactStoreDroppedLogLines = droppedLogLineCount() + 1;
    unreported += 1;
    scheduleReport();
  });
  return logger;
}
