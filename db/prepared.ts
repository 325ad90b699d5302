import type { Query, SQL } from 'drizzle-orm';
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
 * Raw SQL run as the prepared statement `name`. Its text is built once, on first use, from SQL whose
 * changing values are `sql.placeholder(key)`s, and each call passes the values by key. PostgreSQL then parses
 * the statement once per connection, and the text is not rebuilt on every call: rebuilding it with
 * drizzle's sqlToQuery took about 7% of the main thread's samples in a CPU profile of 4 KiB uploads.
 */
export class PreparedSql {
  readonly #build: () => SQL;
  #query: Query | undefined;

  constructor(
    readonly name: string,
    build: () => SQL,
  ) {
    this.#build = build;
  }

  /** Runs the statement on `db` (a pool or a transaction) with a value for each placeholder key. */
  execute(db: Executor, values: Record<string, unknown>): Promise<unknown> {
    this.#query ??= dialect.sqlToQuery(this.#build());
    return db._.session.prepareQuery(this.#query, undefined, this.name, false).execute(values);
  }
}
