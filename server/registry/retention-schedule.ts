import type { SweepContext } from './retention-sweep';
import { sweepRetention } from './retention-sweep';

/** The actor recorded on events of sweeps that the server starts on its own, with no token behind them. */
export const SCHEDULED_SWEEP_ACTOR = 'system:retention-schedule';

/**
 * Runs a retention sweep every `intervalSeconds`, the next one starting only after the previous has
 * finished, and logs each run and each failure. Returns a function that stops the schedule. The timer
 * is unref'd, so it never keeps the process alive. An interval of 0 disables the schedule.
 */
export function scheduleRetentionSweeps(app: SweepContext, intervalSeconds: number): () => void {
  if (intervalSeconds === 0) {
    app.log.info('scheduled retention sweeps are disabled (SWEEP_INTERVAL_SECONDS=0)');
    return () => undefined;
  }

  let timer: NodeJS.Timeout | undefined;
  let stopped = false;
  const runOnce = async () => {
    const startedAt = Date.now();
    try {
      const report = await sweepRetention(app, { dryRun: false, actor: SCHEDULED_SWEEP_ACTOR });
      app.log.info(
        {
          deleted: report.deleted.length,
          blobs_removed: report.blobs_removed.length,
          orphans_removed: report.orphans_removed.length,
          duration_ms: Date.now() - startedAt,
        },
        'scheduled retention sweep finished',
      );
    } catch (error) {
      app.log.error({ err: error, duration_ms: Date.now() - startedAt }, 'scheduled retention sweep failed; the next run retries');
    }
    if (!stopped) schedule();
  };
  const schedule = () => {
    timer = setTimeout(() => void runOnce(), intervalSeconds * 1000);
    timer.unref();
  };

  schedule();
  app.log.info({ interval_seconds: intervalSeconds }, 'scheduled retention sweeps started');
  return () => {
    stopped = true;
    clearTimeout(timer);
  };
}
