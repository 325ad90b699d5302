import crypto from 'node:crypto';
import { and, eq, gt, isNull, sql } from 'drizzle-orm';
import { z } from 'zod';
import type { Executor } from '@/db/client';
import { preparedStatement } from '@/db/prepared';
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

/** POST /tokens body. */
export const CreateTokenRequest = z.object({ name: TokenName, scopes: z.array(Scope).min(1) }).strict();

/** POST /tokens response: the only time the secret `token` is returned. */
export const CreatedToken = z.object({ id: z.uuid(), name: z.string(), scopes: z.array(Scope), token: z.string() });
export type CreatedToken = z.infer<typeof CreatedToken>;

/** A token as GET /tokens lists it, without its secret. */
export const TokenSummary = z.object({
  id: z.uuid(),
  name: z.string(),
  scopes: z.array(Scope),
  created_at: z.iso.datetime(),
  revoked_at: z.iso.datetime().nullable(),
});
export const TokenList = z.object({ tokens: z.array(TokenSummary), next_cursor: z.null() });
export type TokenList = z.infer<typeof TokenList>;

/** POST /session body: the API token to exchange for a session cookie. */
export const SignInRequest = z.object({ token: z.string().min(1).max(512) }).strict();

/** GET /session: the signed-in principal. */
export const SessionPrincipal = z.object({
  name: z.string(),
  scopes: z.array(Scope),
  via: z.enum(['bearer', 'session', 'anonymous']),
  /** The server's limit on a package's metadata, in bytes of canonical JSON; the console checks it before sending. */
  max_metadata_bytes: z.int().positive(),
});
export type SessionPrincipal = z.infer<typeof SessionPrincipal>;

/** POST /session: the principal of the new session and when the session expires. */
export const CreatedSession = z.object({
  name: z.string(),
  scopes: z.array(Scope),
  expires_at: z.iso.datetime(),
  max_metadata_bytes: z.int().positive(),
});
export type CreatedSession = z.infer<typeof CreatedSession>;

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
): Promise<CreatedToken> {
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
  const rows = await preparedStatement(db, 'active_token', activeTokenStatement).execute({ hash: sha256Hex(token) });
  if (rows.length === 0) return null;
  return { tokenId: rows[0].id, name: rows[0].name, scopes: new Set(rows[0].scopes as Scope[]), via: 'bearer' };
}

function activeTokenStatement(db: Executor, name: string) {
  return db
    .select()
    .from(apiTokens)
    .where(and(eq(apiTokens.tokenSha256Hex, sql.placeholder('hash')), isNull(apiTokens.revokedAt)))
    .prepare(name);
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
