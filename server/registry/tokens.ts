import crypto from 'node:crypto';
import { and, eq, gt, isNull } from 'drizzle-orm';
import { z } from 'zod';
import type { Executor } from '@/db/client';
import { apiTokens, sessions } from '@/db/schema';
import { ConflictError, NotFoundError } from '../errors';
import { appendEvent } from './events';

/** `metrics` allows only GET /api/v1/metrics, so a Prometheus server's token can read nothing else. */
export const SCOPES = ['read', 'write', 'retention', 'metrics', 'admin'] as const;
export const Scope = z.enum(SCOPES);
export type Scope = z.infer<typeof Scope>;

export const TokenName = z
  .string()
  .regex(/^[A-Za-z0-9][A-Za-z0-9._@-]{0,127}$/, 'letters, digits, ".", "_", "@" or "-", at most 128 characters');

/** The identity behind a request: the token's name is the actor of every event the request causes. */
export interface Principal {
  tokenId: string | null;
  name: string;
  scopes: ReadonlySet<Scope>;
  via: 'bearer' | 'session' | 'anonymous';
}

const TOKEN_PREFIX = 'as_';

export function sha256Hex(value: string): string {
  return crypto.createHash('sha256').update(value, 'utf8').digest('hex');
}

/** Creates a token and returns its secret; only the SHA-256 of the secret is stored. */
export async function createToken(
  db: Executor,
  input: { name: string; scopes: Scope[]; actor: string },
): Promise<{ id: string; name: string; scopes: Scope[]; token: string }> {
  const name = TokenName.parse(input.name);
  const scopes = [...new Set(input.scopes.map((scope) => Scope.parse(scope)))].sort();
  const token = TOKEN_PREFIX + crypto.randomBytes(32).toString('base64url');
  const id = crypto.randomUUID();

  await db.transaction(async (tx) => {
    const existing = await tx.select({ id: apiTokens.id }).from(apiTokens).where(eq(apiTokens.name, name));
    if (existing.length > 0) throw new ConflictError(`A token named "${name}" already exists; choose another name or revoke it first.`);
    await tx.insert(apiTokens).values({ id, name, tokenSha256Hex: sha256Hex(token), scopes, createdAt: new Date() });
    await appendEvent(tx, {
      eventType: 'token.created',
      subjectKind: 'token',
      subjectId: id,
      actor: input.actor,
      payload: { name, scopes },
    });
  });
  return { id, name, scopes, token };
}

/** Revokes a token by name; its sessions end with it. */
export async function revokeToken(db: Executor, input: { name: string; actor: string }): Promise<void> {
  await db.transaction(async (tx) => {
    const rows = await tx
      .update(apiTokens)
      .set({ revokedAt: new Date() })
      .where(and(eq(apiTokens.name, input.name), isNull(apiTokens.revokedAt)))
      .returning({ id: apiTokens.id });
    if (rows.length === 0) throw new NotFoundError('Active token', input.name);
    await tx.delete(sessions).where(eq(sessions.tokenId, rows[0].id));
    await appendEvent(tx, {
      eventType: 'token.revoked',
      subjectKind: 'token',
      subjectId: rows[0].id,
      actor: input.actor,
      payload: { name: input.name },
    });
  });
}

export async function listTokens(db: Executor) {
  return db
    .select({ id: apiTokens.id, name: apiTokens.name, scopes: apiTokens.scopes, createdAt: apiTokens.createdAt, revokedAt: apiTokens.revokedAt })
    .from(apiTokens)
    .orderBy(apiTokens.name);
}

/** Looks up an active token by its secret; returns null for unknown or revoked tokens. */
export async function findPrincipalByToken(db: Executor, token: string): Promise<Principal | null> {
  const rows = await db
    .select()
    .from(apiTokens)
    .where(and(eq(apiTokens.tokenSha256Hex, sha256Hex(token)), isNull(apiTokens.revokedAt)));
  if (rows.length === 0) return null;
  return { tokenId: rows[0].id, name: rows[0].name, scopes: new Set(rows[0].scopes as Scope[]), via: 'bearer' };
}

/** Starts a console session for a token; returns the cookie value (only its SHA-256 is stored). */
export async function createSession(db: Executor, tokenId: string, ttlSeconds: number): Promise<{ sessionId: string; expiresAt: Date }> {
  const sessionId = crypto.randomBytes(32).toString('base64url');
  const expiresAt = new Date(Date.now() + ttlSeconds * 1000);
  await db.insert(sessions).values({ idSha256Hex: sha256Hex(sessionId), tokenId, createdAt: new Date(), expiresAt });
  return { sessionId, expiresAt };
}

export async function deleteSession(db: Executor, sessionId: string): Promise<void> {
  await db.delete(sessions).where(eq(sessions.idSha256Hex, sha256Hex(sessionId)));
}

export async function findPrincipalBySession(db: Executor, sessionId: string): Promise<Principal | null> {
  const rows = await db
    .select({ id: apiTokens.id, name: apiTokens.name, scopes: apiTokens.scopes })
    .from(sessions)
    .innerJoin(apiTokens, eq(sessions.tokenId, apiTokens.id))
    .where(and(eq(sessions.idSha256Hex, sha256Hex(sessionId)), gt(sessions.expiresAt, new Date()), isNull(apiTokens.revokedAt)));
  if (rows.length === 0) return null;
  return { tokenId: rows[0].id, name: rows[0].name, scopes: new Set(rows[0].scopes as Scope[]), via: 'session' };
}
