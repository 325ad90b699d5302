import { apiRoute } from '@/server/http/route';
import { revokeToken } from '@/server/registry/tokens';

export const dynamic = 'force-dynamic';

export const DELETE = apiRoute<{ name: string }>({ scope: 'admin' }, async ({ app, params, principal }) => {
  await revokeToken(app.db, { name: params.name, actor: principal.name });
  return new Response(null, { status: 204 });
});
