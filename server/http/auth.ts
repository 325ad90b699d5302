import type { Executor } from '@/db/client';
import { ForbiddenError, UnauthorizedError } from '../errors';
import { findPrincipalBySession, findPrincipalByToken, type Principal, type Scope } from '../registry/tokens';

export const SESSION_COOKIE = 'as_session';

const ANONYMOUS: Principal = { tokenId: null, name: 'anonymous', scopes: new Set(['read']), via: 'anonymous' };

/**
 * Identifies the caller from `Authorization: Bearer` or the console's session cookie. Returns null when
 * neither is present; throws 401 with `error="invalid_token"` for an unknown, revoked or malformed one.
 * With `anonRead`, a request without credentials is the read-only principal "anonymous".
 */
export async function authenticate(db: Executor, request: Request, anonRead: boolean): Promise<Principal | null> {
  const authorization = request.headers.get('authorization');
  if (authorization !== null) {
    const match = /^Bearer +([A-Za-z0-9._~+/-]+=*) *$/i.exec(authorization);
    if (!match) throw new UnauthorizedError('The Authorization header must be "Bearer <token>".', true);
    const principal = await findPrincipalByToken(db, match[1]);
    if (!principal) throw new UnauthorizedError('The bearer token is unknown or has been revoked.', true);
    return principal;
  }

  const sessionId = readCookie(request, SESSION_COOKIE);
  if (sessionId !== null) {
    const principal = await findPrincipalBySession(db, sessionId);
    if (!principal) throw new UnauthorizedError('The session has expired or its token was revoked; sign in again.', true);
    assertSameOrigin(request);
    return principal;
  }

  return anonRead ? ANONYMOUS : null;
}

/** Throws 401 without credentials and 403 `insufficient_scope` when the principal lacks the scope. */
export function requireScope(principal: Principal | null, scope: Scope): Principal {
  if (!principal) throw new UnauthorizedError('This request needs a bearer token.', false);
  if (!principal.scopes.has(scope) && !principal.scopes.has('admin')) {
    if (principal.via === 'anonymous') throw new UnauthorizedError('This request needs a bearer token.', false);
    throw new ForbiddenError(scope);
  }
  return principal;
}

const SAFE_METHODS = new Set(['GET', 'HEAD', 'OPTIONS']);

/**
 * A cookie-authenticated request that changes state must come from the console's own origin. Browsers
 * send Origin on such requests (and Sec-Fetch-Site), so a missing or foreign origin is rejected.
 */
function assertSameOrigin(request: Request): void {
  if (SAFE_METHODS.has(request.method)) return;
  const fetchSite = request.headers.get('sec-fetch-site');
  if (fetchSite !== null && fetchSite !== 'same-origin') {
    throw new UnauthorizedError('A session cookie is accepted on state-changing requests only from the console itself.', true);
  }
  const origin = request.headers.get('origin');
  const host = request.headers.get('host');
  if (origin === null || host === null || originHost(origin) !== host) {
    throw new UnauthorizedError('A session cookie is accepted on state-changing requests only from the console itself.', true);
  }
}

export function readCookie(request: Request, name: string): string | null {
  const header = request.headers.get('cookie');
  if (!header) return null;
  for (const part of header.split(';')) {
    const index = part.indexOf('=');
    if (index < 0) continue;
    if (part.slice(0, index).trim() === name) return part.slice(index + 1).trim();
  }
  return null;
}

function originHost(origin: string): string | null {
  try {
    return new URL(origin).host;
  } catch {
    return null;
  }
}
