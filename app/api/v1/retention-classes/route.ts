import { apiRoute, jsonResponse } from '@/server/http/route';

export const dynamic = 'force-dynamic';

export const GET = apiRoute({ scope: 'read' }, async ({ app }) =>
  jsonResponse({ retention_classes: app.retentionClasses, next_cursor: null }),
);
