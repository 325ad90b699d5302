import { parseJsonBody } from '@/server/http/body';
import { apiRoute, jsonResponse } from '@/server/http/route';
import { ExtendRetention, extendRetention } from '@/server/registry/retention-extensions';

export const dynamic = 'force-dynamic';

/** Moves the expiry of a finalized package later; returns the new retention state. */
export const POST = apiRoute<{ id: string }>({ scope: 'retention' }, async ({ request, app, params, principal }) => {
  const input = await parseJsonBody(request, ExtendRetention);
  return jsonResponse(await extendRetention(app.db, params.id, input, principal.name));
});
