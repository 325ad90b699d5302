import { parseJsonBody, parseQuery } from '@/server/http/body';
import { parseIdempotencyKey } from '@/server/http/idempotency-key';
import { apiRoute, jsonResponse } from '@/server/http/route';
import { CreatePackage, createPackage, ListPackagesQuery, listPackages } from '@/server/registry/packages';

export const dynamic = 'force-dynamic';

export const POST = apiRoute({ scope: 'write' }, async ({ request, app, principal }) => {
  const idempotencyKey = parseIdempotencyKey(request.headers.get('idempotency-key'));
  const input = await parseJsonBody(request, CreatePackage, app.settings.MAX_METADATA_BYTES + 16 * 1024);
  // A repeated request gets 201 again, with the package the first one created as it is now.
  const record = await createPackage(app.db, input, principal.name, app.settings.MAX_METADATA_BYTES, idempotencyKey);
  return jsonResponse(record, 201, { Location: `/api/v1/packages/${record.id}` });
});

export const GET = apiRoute({ scope: 'read' }, async ({ request, app }) => {
  const query = parseQuery(request, ListPackagesQuery);
  return jsonResponse(await listPackages(app.db, query));
});
