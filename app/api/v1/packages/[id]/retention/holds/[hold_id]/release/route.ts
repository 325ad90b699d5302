import { parseJsonBody } from '@/server/http/body';
import { apiRoute, jsonResponse } from '@/server/http/route';
import { HoldRequest, releaseHold } from '@/server/registry/retention-holds';

export const dynamic = 'force-dynamic';

/** Releases an active hold; returns the released hold. */
export const POST = apiRoute<{ id: string; hold_id: string }>({ scope: 'retention' }, async ({ request, app, params, principal }) => {
  const input = await parseJsonBody(request, HoldRequest);
  return jsonResponse(await releaseHold(app.db, params.id, params.hold_id, input, principal.name));
});
