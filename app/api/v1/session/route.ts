import { UnauthorizedError } from '@/server/errors';
import { readCookie, SESSION_COOKIE } from '@/server/http/auth';
import { parseJsonBody } from '@/server/http/body';
import { apiRoute, jsonResponse } from '@/server/http/route';
import {
  createSession,
  deleteSession,
  findPrincipalByToken,
  SignInRequest,
  type CreatedSession,
  type SessionPrincipal,
} from '@/server/registry/tokens';

export const dynamic = 'force-dynamic';

function sessionCookie(value: string, maxAgeSeconds: number, secure: boolean): string {
  return `${SESSION_COOKIE}=${value}; Path=/; HttpOnly; SameSite=Strict; Max-Age=${maxAgeSeconds}${secure ? '; Secure' : ''}`;
}

/**
 * Returns the signed-in principal, which the console shows, and the server's metadata size limit, which
 * the create form checks before sending.
 */
export const GET = apiRoute({ scope: null }, async ({ principal, app }) => {
  if (principal.via === 'anonymous' && principal.scopes.size === 0) throw new UnauthorizedError('Not signed in.', false);
  const body: SessionPrincipal = {
    name: principal.name,
    scopes: [...principal.scopes].sort(),
    via: principal.via,
    max_metadata_bytes: app.settings.MAX_METADATA_BYTES,
  };
  return jsonResponse(body);
});

/** Exchanges an API token for an httpOnly, SameSite=Strict session cookie. */
export const POST = apiRoute({ scope: null }, async ({ request, app }) => {
  const { token } = await parseJsonBody(request, SignInRequest);
  const principal = await findPrincipalByToken(app.db, token);
  if (!principal?.tokenId) throw new UnauthorizedError('The token is unknown or has been revoked.', true);
  const session = await createSession(app.db, principal.tokenId, app.settings.SESSION_TTL_SECONDS);
  const secure = new URL(request.url).protocol === 'https:';
  const body: CreatedSession = {
    name: principal.name,
    scopes: [...principal.scopes].sort(),
    expires_at: session.expiresAt.toISOString(),
    max_metadata_bytes: app.settings.MAX_METADATA_BYTES,
  };
  return jsonResponse(body, 201, {
    'Set-Cookie': sessionCookie(session.sessionId, app.settings.SESSION_TTL_SECONDS, secure),
  });
});

export const DELETE = apiRoute({ scope: null }, async ({ request, app }) => {
  const sessionId = readCookie(request, SESSION_COOKIE);
  if (sessionId) await deleteSession(app.db, sessionId);
  return new Response(null, { status: 204, headers: { 'Set-Cookie': sessionCookie('', 0, false) } });
});
