import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Database } from '@/db/client';
import { CreatePackage, createPackage } from '@/server/registry/packages';
import { ON_POSTGRES, type ScratchDatabase } from '../support/database';
import { openScratchStore, type ScratchStore } from '../support/scratch-store';

// createPackage is paused after its first query, the lookup of the key, so that another connection can
// commit in that window. PGlite allows one connection, so these run on PostgreSQL only.

const ACTOR = 'race-actor';
const MAX_METADATA_BYTES = 65_536;

let store: ScratchStore;
let database: ScratchDatabase;

beforeAll(async () => {
  if (!ON_POSTGRES) return;
  store = await openScratchStore('idempotency-races-');
  database = store.database;
}, 60_000);

afterAll(async () => {
  await store?.close();
});

function body(name: string): CreatePackage {
  return CreatePackage.parse({ name, producer: 'test', subject: 'test', retention_class: 'test' });
}

/** Wraps a query builder so that its rows reach the caller only after `hook` has run, the first time any builder of `state` runs. */
function pauseAfter<T extends object>(builder: T, state: { fired: boolean }, hook: () => Promise<void>): T {
  return new Proxy(builder, {
    get(target, property) {
      const value = Reflect.get(target, property, target);
      if (typeof value !== 'function') return value;
      if (property === 'then') {
        return (onFulfilled: (rows: unknown) => unknown, onRejected: (error: unknown) => unknown) =>
          (value as (resolve: (rows: unknown) => unknown) => Promise<unknown>)
            .call(target, async (rows: unknown) => {
              if (!state.fired) {
                state.fired = true;
                await hook();
              }
              return rows;
            })
            .then(onFulfilled, onRejected);
      }
      return (...args: unknown[]) => {
        const result = (value as (...values: unknown[]) => unknown).apply(target, args);
        return result !== null && typeof result === 'object' ? pauseAfter(result, state, hook) : result;
      };
    },
  });
}

/** Wraps `db` so that its first SELECT outside a transaction runs `hook` once it has its rows. */
function pausingDatabase(db: Database, hook: () => Promise<void>): Database {
  const state = { fired: false };
  return new Proxy(db, {
    get(target, property) {
      const value = Reflect.get(target, property, target);
      if (typeof value !== 'function') return value;
      if (property === 'select') return (...args: unknown[]) => pauseAfter(value.apply(target, args), state, hook);
      return value.bind(target);
    },
  });
}

describe.skipIf(!ON_POSTGRES)('Idempotency-Key races', () => {
  it('returns a package committed after the lookup', async () => {
    const db = database.connection.db;
    let first: { id: string } | undefined;
    const repeat = await createPackage(
      pausingDatabase(db, async () => {
        first = await createPackage(db, body('committed-meanwhile'), ACTOR, MAX_METADATA_BYTES, 'committed-meanwhile');
      }),
      body('committed-meanwhile'),
      ACTOR,
      MAX_METADATA_BYTES,
      'committed-meanwhile',
    );
    expect(first).toBeDefined();
    expect(repeat.id).toBe(first!.id);
  });

  it('skips a package swept after the lookup', async () => {
    const db = database.connection.db;
    const created = await createPackage(db, body('swept-meanwhile'), ACTOR, MAX_METADATA_BYTES, 'swept-meanwhile');
    // The writes of the retention sweep's deletion of a package, in one transaction.
    const sweep = async () => {
      const client = new pg.Client({ connectionString: database.url });
      await client.connect();
      try {
        await client.query('BEGIN');
        await client.query("UPDATE packages SET status = 'deleted', deleted_at = now() WHERE id = $1", [created.id]);
        await client.query('DELETE FROM package_idempotency_keys WHERE package_id = $1', [created.id]);
        await client.query('COMMIT');
      } finally {
        await client.end();
      }
    };
    const repeat = await createPackage(pausingDatabase(db, sweep), body('swept-meanwhile'), ACTOR, MAX_METADATA_BYTES, 'swept-meanwhile');
    expect(repeat.id).not.toBe(created.id);
    expect(repeat.status).toBe('open');
  });
});
