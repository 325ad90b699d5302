import { apiRoute } from '@/server/http/route';
import { revokeToken } from '@/server/registry/tokens';

export const dynamic = 'force-dynamic';

export const DELETE = apiRoute<{ name: string }>({ scope: 'admin' }, async ({ app, params, principal }) => {
  const tokenId = await revokeToken(app.db, { name: params.name, actor: principal.name });
  app.tokenCache.forget(tokenId);
  return new Response(null, { status: 204 });
});
