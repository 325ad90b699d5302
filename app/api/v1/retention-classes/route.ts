import { apiRoute, jsonResponse } from '@/server/http/route';
import type { RetentionClassList } from '@/server/registry/retention-classes';

export const dynamic = 'force-dynamic';

export const GET = apiRoute({ scope: 'read' }, async ({ app }) => {
  const body: RetentionClassList = { retention_classes: app.retentionClasses, next_cursor: null };
  return jsonResponse(body);
});
