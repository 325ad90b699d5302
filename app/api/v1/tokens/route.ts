import { z } from 'zod';
import { parseJsonBody } from '@/server/http/body';
import { apiRoute, jsonResponse } from '@/server/http/route';
import { createToken, listTokens, Scope, TokenName } from '@/server/registry/tokens';

export const dynamic = 'force-dynamic';

const CreateTokenBody = z.object({ name: TokenName, scopes: z.array(Scope).min(1) }).strict();

/** Creates a token; the secret is in this response only. */
export const POST = apiRoute({ scope: 'admin' }, async ({ request, app, principal }) => {
  const input = await parseJsonBody(request, CreateTokenBody);
  return jsonResponse(await createToken(app.db, { ...input, actor: principal.name }), 201);
});

export const GET = apiRoute({ scope: 'admin' }, async ({ app }) => {
  const tokens = await listTokens(app.db);
  return jsonResponse({
    tokens: tokens.map((token) => ({
      id: token.id,
      name: token.name,
      scopes: token.scopes,
      created_at: token.createdAt.toISOString(),
      revoked_at: token.revokedAt?.toISOString() ?? null,
    })),
    next_cursor: null,
  });
});
