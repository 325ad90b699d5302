import type { SQL } from 'drizzle-orm';
import { PgDialect } from 'drizzle-orm/pg-core';
import type { Executor } from './client';

const statements = new WeakMap<Executor, Map<string, unknown>>();

/**
 * Returns the prepared statement `name` of this database handle, which `build` creates on first use. The
 * SQL is then built once per handle instead of once per call, and node-postgres has PostgreSQL parse it
 * once per connection. The server runs its hottest lookups (file downloads, token checks) this way.
 */
export function preparedStatement<Statement>(db: Executor, name: string, build: (db: Executor, name: string) => Statement): Statement {
  let byName = statements.get(db);
  if (byName === undefined) {
    byName = new Map();
    statements.set(db, byName);
  }
  let statement = byName.get(name) as Statement | undefined;
  if (statement === undefined) {
    statement = build(db, name);
    byName.set(name, statement);
  }
  return statement;
}

const dialect = new PgDialect();

/**
 * Runs raw SQL as the prepared statement `name`, so that node-postgres has PostgreSQL parse it once per
 * connection instead of on every call. The SQL text of `query` must be the same on every call
 * under one name, and only its parameters may change: node-postgres rejects a name reused for other text.
 */
export function executePrepared(db: Executor, name: string, query: SQL): Promise<unknown> {
  return db._.session.prepareQuery(dialect.sqlToQuery(query), undefined, name, false).execute();
}
