import { parseJsonBody } from '@/server/http/body';
import { apiRoute, jsonResponse } from '@/server/http/route';
import { CreateTokenRequest, createToken, listTokens, type Scope, type TokenList } from '@/server/registry/tokens';

export const dynamic = 'force-dynamic';

/** Creates a token; the secret is in this response only. */
export const POST = apiRoute({ scope: 'admin' }, async ({ request, app, principal }) => {
  const input = await parseJsonBody(request, CreateTokenRequest);
  return jsonResponse(await createToken(app.db, { ...input, actor: principal.name }), 201);
});

export const GET = apiRoute({ scope: 'admin' }, async ({ app }) => {
  const tokens = await listTokens(app.db);
  const body: TokenList = {
    tokens: tokens.map((token) => ({
      id: token.id,
      name: token.name,
      scopes: token.scopes as Scope[],
      created_at: token.createdAt.toISOString(),
      revoked_at: token.revokedAt?.toISOString() ?? null,
    })),
    next_cursor: null,
  };
  return jsonResponse(body);
});
