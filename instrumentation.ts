/**
 * Next.js calls register() once when the server starts. The registry's context is created here rather
 * than on the first request, so migrations, the recovery of interrupted writes and their log lines
 * happen at start.
 */
export async function register(): Promise<void> {
  if (process.env.NEXT_RUNTIME !== 'nodejs') return;
  const { startServerProcess } = await import('./server/server-process');
  const { closeAppContext, stopEventWaiters } = await import('./server/app-context');
  try {
    await startServerProcess();
    // scripts/server.mjs looks this up and serves downloads, raw PUTs and tus uploads without Next.js's request path.
    const { serveDirectRoute } = await import('./server/http/direct-routes');
    (globalThis as Record<symbol, unknown>)[Symbol.for('artifact-store.serveDirectRoute')] = serveDirectRoute;
    // scripts/server.mjs calls this after the last request on SIGTERM or SIGINT; on PGlite it also gives back the data directory's lock.
    (globalThis as Record<symbol, unknown>)[Symbol.for('artifact-store.closeDatabase')] = closeAppContext;
    // scripts/server.mjs calls this first on SIGTERM or SIGINT, so that long polls and event streams end at once.
    (globalThis as Record<symbol, unknown>)[Symbol.for('artifact-store.stopEventWaiters')] = stopEventWaiters;
  } catch (error) {
    // Next.js 16.5 logs a failed hook and then returns a plain-text 500 for every request, also after
    // the cause is gone. Exiting lets a supervisor restart the server instead.
    console.error('artifact-store failed to start:', error);
    process.exit(1);
  }
}
