import { apiRoute, jsonResponse } from '@/server/http/route';
import { finalizePackage } from '@/server/registry/finalize';

export const dynamic = 'force-dynamic';

export const POST = apiRoute<{ id: string }>({ scope: 'write' }, async ({ app, params, principal }) =>
  jsonResponse(await finalizePackage(app.db, app.primaryBackend, params.id, principal.name)),
);
