import { apiRoute, jsonResponse } from '@/server/http/route';
import { reportBackends, type BackendList } from '@/server/registry/health';

export const dynamic = 'force-dynamic';

export const GET = apiRoute({ scope: 'read' }, async ({ app }) => {
  const body: BackendList = { backends: await reportBackends(app), next_cursor: null };
  return jsonResponse(body);
});
