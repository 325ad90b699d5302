import { parseJsonBody, parseQuery } from '@/server/http/body';
import { apiRoute, jsonResponse } from '@/server/http/route';
import {
  ListMetadataSchemasQuery,
  listMetadataSchemas,
  registerMetadataSchema,
  RegisterMetadataSchema,
  type MetadataSchemaPage,
} from '@/server/registry/metadata-schemas';

export const dynamic = 'force-dynamic';

export const POST = apiRoute({ scope: 'admin' }, async ({ request, app, principal }) => {
  const input = await parseJsonBody(request, RegisterMetadataSchema);
  const record = await registerMetadataSchema(app.db, input, principal.name);
  return jsonResponse(record, 201, { Location: `/api/v1/metadata-schemas/${record.slug}` });
});

export const GET = apiRoute({ scope: 'read' }, async ({ request, app }) => {
  const query = parseQuery(request, ListMetadataSchemasQuery);
  const page = await listMetadataSchemas(app.db, { after: query.cursor, limit: query.limit });
  const body: MetadataSchemaPage = { metadata_schemas: page.items, next_cursor: page.nextAfter };
  return jsonResponse(body);
});
