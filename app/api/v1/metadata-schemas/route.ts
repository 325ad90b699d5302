import { z } from 'zod';
import { parseJsonBody, parseQuery } from '@/server/http/body';
import { apiRoute, jsonResponse } from '@/server/http/route';
import { listMetadataSchemas, registerMetadataSchema, RegisterMetadataSchema } from '@/server/registry/metadata-schemas';

export const dynamic = 'force-dynamic';

const ListQuery = z
  .object({ limit: z.coerce.number().int().min(1).max(500).default(100), cursor: z.string().max(256).optional() })
  .strict();

export const POST = apiRoute({ scope: 'admin' }, async ({ request, app, principal }) => {
  const input = await parseJsonBody(request, RegisterMetadataSchema);
  const record = await registerMetadataSchema(app.db, input, principal.name);
  return jsonResponse(record, 201, { Location: `/api/v1/metadata-schemas/${record.slug}` });
});

export const GET = apiRoute({ scope: 'read' }, async ({ request, app }) => {
  const query = parseQuery(request, ListQuery);
  const page = await listMetadataSchemas(app.db, { after: query.cursor, limit: query.limit });
  return jsonResponse({ metadata_schemas: page.items, next_cursor: page.nextAfter });
});
