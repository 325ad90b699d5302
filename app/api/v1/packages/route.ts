import { parseJsonBody, parseQuery } from '@/server/http/body';
import { apiRoute, jsonResponse } from '@/server/http/route';
import { CreatePackage, createPackage, ListPackagesQuery, listPackages } from '@/server/registry/packages';

export const dynamic = 'force-dynamic';

export const POST = apiRoute({ scope: 'write' }, async ({ request, app, principal }) => {
  const input = await parseJsonBody(request, CreatePackage, app.settings.MAX_METADATA_BYTES + 16 * 1024);
  const record = await createPackage(app.db, input, principal.name, app.settings.MAX_METADATA_BYTES);
  return jsonResponse(record, 201, { Location: `/api/v1/packages/${record.id}` });
});

export const GET = apiRoute({ scope: 'read' }, async ({ request, app }) => {
  const query = parseQuery(request, ListPackagesQuery);
  return jsonResponse(await listPackages(app.db, query));
});
