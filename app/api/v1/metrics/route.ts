import { authenticate, requireScope } from '@/server/http/auth';
import { apiRoute } from '@/server/http/route';
import { renderMetrics } from '@/server/metrics/scrape';

export const dynamic = 'force-dynamic';

/**
 * Returns every metric in the Prometheus text format. The caller needs a token with the `metrics` or
 * `admin` scope unless METRICS_ANON=true, and ANON_READ does not open it. The wrapper authenticates
 * optionally, so the scope is checked here, where the setting is known.
 */
export const GET = apiRoute({ scope: null }, async ({ request, app }) => {
  if (!app.settings.METRICS_ANON) requireScope(await authenticate(app.db, request, false), 'metrics');
  const exposition = await renderMetrics(app);
  return new Response(exposition.body, {
    status: 200,
    headers: { 'Content-Type': exposition.contentType, 'Cache-Control': 'no-store' },
  });
});
