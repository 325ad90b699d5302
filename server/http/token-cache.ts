import type { DatabaseConnection, Executor } from '@/db/client';
import type { Logger } from 'pino';
import { findPrincipalByTokenHash, sha256Hex, TOKENS_CHANNEL, type Principal } from '../registry/tokens';

/** How long an active token stays cached without a lookup, in milliseconds. */
export const TOKEN_CACHE_TTL_MS = 60_000;

/** The number of tokens kept; beyond it the least recently stored token is dropped. */
export const TOKEN_CACHE_MAX_ENTRIES = 10_000;

const UUID_PATTERN = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

interface CacheEntry {
  principal: Principal;
  expiresAt: number;
}

/**
 * Keeps active bearer tokens in process memory, keyed by the SHA-256 of the secret, so that a request
 * with a known token needs no database round trip.
 *
 * Revocation: revokeToken sends NOTIFY on TOKENS_CHANNEL with the token id in its transaction, so
 * PostgreSQL delivers it to every listening process when the revoke commits, and each process drops the
 * token at once. The process that revoked drops it itself as well (see `forget`), so its own next request
 * never waits for the notification. While the LISTEN connection is down, notifications can be lost, so
 * the cache is neither read nor filled until the connection is back; reconnecting calls the handler with
 * "0", which clears every entry.
 * NOTE: another process still accepts a revoked token for the time the notification takes to reach it
 * (PostgreSQL signals the listener at commit; on loopback that took well under a millisecond).
 *
 * Unknown and revoked tokens are never cached, so every request with one of them reads the database.
 */
export class TokenCache {
  readonly #entries = new Map<string, CacheEntry>();
  /** Incremented on every invalidation, so a lookup that raced with one does not store its stale result. */
  #generation = 0;

  private constructor(
    private readonly isListening: () => boolean,
    private readonly now: () => number,
  ) {}

  /** Subscribes to revocations on the connection and returns the cache. */
  static async start(connection: DatabaseConnection, log: Logger, now: () => number = Date.now): Promise<TokenCache> {
    const cache = new TokenCache(() => connection.isListening(), now);
    await connection.listen(TOKENS_CHANNEL, (payload) => {
      cache.forget(payload);
      log.debug({ token_id: payload }, 'dropped a revoked token from the token cache');
    });
    return cache;
  }

  get size(): number {
    return this.#entries.size;
  }

  /** Returns the active token's principal, from memory when cached; null for an unknown or revoked token. */
  async findPrincipal(db: Executor, token: string): Promise<Principal | null> {
    const hash = sha256Hex(token);
    const listening = this.isListening();
    if (listening) {
      const entry = this.#entries.get(hash);
      if (entry && entry.expiresAt > this.now()) return entry.principal;
      if (entry) this.#entries.delete(hash);
    }

    const generation = this.#generation;
    const principal = await findPrincipalByTokenHash(db, hash);
    if (principal && listening && generation === this.#generation && this.isListening()) this.#store(hash, principal);
    return principal;
  }

  /** Drops the token with this id; a value that is not a UUID (such as the reconnect's "0") drops every token. */
  forget(tokenId: string): void {
    this.#generation += 1;
    if (!UUID_PATTERN.test(tokenId)) {
      this.#entries.clear();
      return;
    }
    for (const [hash, entry] of this.#entries) {
      if (entry.principal.tokenId === tokenId) this.#entries.delete(hash);
    }
  }

  #store(hash: string, principal: Principal): void {
    this.#entries.delete(hash);
    if (this.#entries.size >= TOKEN_CACHE_MAX_ENTRIES) {
      const oldest = this.#entries.keys().next().value;
      if (oldest !== undefined) this.#entries.delete(oldest);
    }
    this.#entries.set(hash, { principal, expiresAt: this.now() + TOKEN_CACHE_TTL_MS });
  }
}
