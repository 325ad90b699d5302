import pino, { type DestinationStream, type Logger } from 'pino';
import { getSettings } from './settings';

/**
 * Maximum bytes of log lines that wait in memory while stdout does not accept them (a stalled log
 * collector or pipe). Lines beyond it are dropped and counted, so a blocked stdout cannot grow the
 * process until it runs out of memory.
 */
export const LOG_BUFFER_MAX_BYTES = 16 * 1024 * 1024;
/** How long after the first dropped line the count of dropped lines is logged. */
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

/** Returns how many log lines the process dropped because its output was blocked. */
export function droppedLogLineCount(): number {
  return globalForLogger.artifactStoreDroppedLogLines ?? 0;
}

/**
 * Creates a logger that writes to `fd` asynchronously and keeps at most `maxBufferedBytes` of lines
 * that the fd has not accepted yet. Each dropped line is counted. Five seconds after a drop the logger
 * reports how many lines it dropped, and while the fd stays blocked that report is dropped too.
 */
export function createLogger(level: string, fd: number, maxBufferedBytes: number): Logger {
  const destination = pino.destination({ dest: fd, sync: false, maxLength: maxBufferedBytes });
  const logger = pino(
    {
      level,
      base: { service: 'artifact-store' },
      redact: { paths: ['token', 'authorization', 'headers.authorization', 'cookie'], censor: '[redacted]' },
    },
    destination as DestinationStream,
  );

  let unreported = 0;
  let report: NodeJS.Timeout | undefined;
  destination.on('drop', () => {
    globalForLogger.artifactStoreDroppedLogLines = droppedLogLineCount() + 1;
    unreported += 1;
    report ??= setTimeout(() => {
      report = undefined;
      const dropped = unreported;
      unreported = 0;
      logger.warn({ dropped_lines: dropped, max_buffered_bytes: maxBufferedBytes }, 'log lines were dropped because the log output did not accept them');
    }, DROPPED_LINES_REPORT_MS).unref();
  });
  return logger;
}
