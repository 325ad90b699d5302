import { apiRoute, jsonResponse } from '@/server/http/route';
import { checkHealth } from '@/server/registry/health';

export const dynamic = 'force-dynamic';

export const GET = apiRoute({ scope: null, identifyCaller: false }, async ({ app }) => {
  const report = await checkHealth(app.connection, app);
  return jsonResponse(report, report.status === 'ok' ? 200 : 503);
});
