import { apiRoute, jsonResponse } from '@/server/http/route';
import { deleteOpenPackage, getPackage } from '@/server/registry/packages';

export const dynamic = 'force-dynamic';

export const GET = apiRoute<{ id: string }>({ scope: 'read' }, async ({ app, params }) => jsonResponse(await getPackage(app.db, params.id)));

export const DELETE = apiRoute<{ id: string }>({ scope: 'write' }, async ({ app, params, principal }) => {
  await deleteOpenPackage(app.db, params.id, principal.name);
  return new Response(null, { status: 204 });
});
