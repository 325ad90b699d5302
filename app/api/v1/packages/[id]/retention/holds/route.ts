import { parseJsonBody } from '@/server/http/body';
import { apiRoute, jsonResponse } from '@/server/http/route';
import { applyHold, HoldRequest, listHolds } from '@/server/registry/retention-holds';

export const dynamic = 'force-dynamic';

/** Every hold of the package, active and released, oldest first. */
export const GET = apiRoute<{ id: string }>({ scope: 'read' }, async ({ app, params }) => jsonResponse({ holds: await listHolds(app.db, params.id) }));

/** Applies a hold (201 with the hold). */
export const POST = apiRoute<{ id: string }>({ scope: 'retention' }, async ({ request, app, params, principal }) => {
  const input = await parseJsonBody(request, HoldRequest);
  return jsonResponse(await applyHold(app.db, params.id, input, principal.name), 201);
});
