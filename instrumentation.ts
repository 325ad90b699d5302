/**
 * Next.js calls register() once when the server starts. The registry's context is created here rather
 * than on the first request, so migrations, the recovery of interrupted writes and their log lines
 * happen at start.
 */
export async function register(): Promise<void> {
  if (process.env.NEXT_RUNTIME !== 'nodejs') return;
  const { startServerProcess } = await import('./server/server-process');
  await startServerProcess();
}
