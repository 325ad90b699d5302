import pino, { type Logger } from 'pino';
import { getSettings } from './settings';

const globalForLogger = globalThis as typeof globalThis & { artifactStoreLogger?: Logger };

/** The process-wide pino logger; request handlers log through `logger.child({ request_id, actor })`. */
export function getLogger(): Logger {
  globalForLogger.artifactStoreLogger ??= pino({
    level: getSettings().LOG_LEVEL,
    base: { service: 'artifact-store' },
    redact: { paths: ['token', 'authorization', 'headers.authorization', 'cookie'], censor: '[redacted]' },
  });
  return globalForLogger.artifactStoreLogger;
}
