import { apiRoute, jsonResponse } from '@/server/http/route';
import { reportBackends } from '@/server/registry/health';

export const dynamic = 'force-dynamic';

export const GET = apiRoute({ scope: 'read' }, async ({ app }) =>
  jsonResponse({ backends: await reportBackends(app.backends.values()), next_cursor: null }),
);
