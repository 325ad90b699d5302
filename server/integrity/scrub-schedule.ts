import type { Settings } from '../settings';
import { uploadsInProgress } from '../metrics/uploads';
import { scrubStorage, type ScrubContext, type ScrubRates } from './scrub';

/** The actor recorded on events of scrubs that the server starts on its own. */
export const SCHEDULED_SCRUB_ACTOR = 'system:scrub-schedule';

const BYTES_PER_MEGABYTE = 1_000_000;

/**
 * Returns the scrub's read rates in bytes per second: SCRUB_RATE_MB_PER_S, and SCRUB_BUSY_RATE_MB_PER_S
 * (at most the former) while this process receives an upload. A scrub then takes little of the disk and
 * CPU that uploads need. Uploads to other processes do not slow it.
 */
export function scrubRates(settings: Settings): ScrubRates {
  const rateBytesPerSecond = settings.SCRUB_RATE_MB_PER_S * BYTES_PER_MEGABYTE;
  return {
    rateBytesPerSecond,
    busyRateBytesPerSecond: Math.min(settings.SCRUB_BUSY_RATE_MB_PER_S * BYTES_PER_MEGABYTE, rateBytesPerSecond),
    isBusy: () => uploadsInProgress() > 0,
  };
}

/**
 * Starts a full scrub every `intervalSeconds`, each one after the previous has finished, and logs every
 * run and failure. Returns a function that stops the schedule. The timer is unref'd; 0 disables it.
 */
export function scheduleScrubs(context: Omit<ScrubContext, keyof ScrubRates>, settings: Settings): () => void {
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
        { ...context, ...scrubRates(settings) },
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
