import type { Settings } from '../settings';
import { scrubStorage, type ScrubContext } from './scrub';

/** The actor recorded on events of scrubs that the server starts on its own. */
export const SCHEDULED_SCRUB_ACTOR = 'system:scrub-schedule';

const BYTES_PER_MEGABYTE = 1_000_000;

/** Converts SCRUB_RATE_MB_PER_S to the scrub's read rate in bytes per second. */
export function scrubRateBytesPerSecond(settings: Settings): number {
  return settings.SCRUB_RATE_MB_PER_S * BYTES_PER_MEGABYTE;
}

/**
 * Starts a full scrub every `intervalSeconds`, each one after the previous has finished, and logs every
 * run and failure. Returns a function that stops the schedule. The timer is unref'd; 0 disables it.
 */
export function scheduleScrubs(context: Omit<ScrubContext, 'rateBytesPerSecond'>, settings: Settings): () => void {
  const intervalSeconds = settings.SCRUB_INTERVAL_SECONDS;
  if (intervalSeconds === 0) {
    context.log.info('scheduled fixity scrubs are disabled (SCRUB_INTERVAL_SECONDS=0)');
    return () => undefined;
  }

  const abort = new AbortController();
  let timer: NodeJS.Timeout | undefined;
  const runOnce = async () => {
    const startedAt = Date.now();
    try {
      const report = await scrubStorage(
        { ...context, rateBytesPerSecond: scrubRateBytesPerSecond(settings) },
        // Copies that another instance's schedule checked within the period are not read again.
        { actor: SCHEDULED_SCRUB_ACTOR, signal: abort.signal, skipVerifiedWithinSeconds: intervalSeconds },
      );
      context.log.info(
        {
          checked: report.checked,
          bytes_read: report.bytes_read,
          corrupt: report.corrupt.length,
          missing: report.missing.length,
          repaired: report.repaired.length,
          repair_failed: report.repair_failed.length,
          duration_ms: Date.now() - startedAt,
        },
        'scheduled fixity scrub finished',
      );
    } catch (error) {
      if (abort.signal.aborted) return;
      context.log.error({ err: error, duration_ms: Date.now() - startedAt }, 'scheduled fixity scrub failed; the next run retries');
    }
    if (!abort.signal.aborted) schedule();
  };
  const schedule = () => {
    timer = setTimeout(() => void runOnce(), intervalSeconds * 1000);
    timer.unref();
  };
  schedule();
  return () => {
    abort.abort();
    clearTimeout(timer);
  };
}
