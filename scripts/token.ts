/**
 * Creates, revokes and lists API tokens directly in the database.
 *
 *   npm run token -- create --name NAME --scopes read,write,retention,admin
 *   npm run token -- revoke --name NAME
 *   npm run token -- list
 *
 * It uses the same settings as the server (DATABASE_URL, or the embedded database under DATA_DIR). The
 * embedded database allows one process at a time, so with it stop the server first, or create tokens
 * through POST /api/v1/tokens with an admin token while it runs.
 */
import { parseArgs } from 'node:util';
import { connectDatabase } from '../db/client';
import { getSettings } from '../server/settings';
import { createToken, listTokens, revokeToken, Scope, SCOPES } from '../server/registry/tokens';

const USAGE = `usage:
  npm run token -- create --name NAME --scopes read,write,retention,admin
  npm run token -- revoke --name NAME
  npm run token -- list`;

async function main(): Promise<number> {
  const { positionals, values } = parseArgs({
    allowPositionals: true,
    options: { name: { type: 'string' }, scopes: { type: 'string' } },
  });
  const command = positionals[0];
  if (!command || !['create', 'revoke', 'list'].includes(command) || positionals.length > 1) {
    console.error(USAGE);
    return 2;
  }

  const settings = getSettings();
  let connection: Awaited<ReturnType<typeof connectDatabase>>;
  try {
    connection = await connectDatabase({ databaseUrl: settings.DATABASE_URL, pgliteDir: settings.pgliteDir });
  } catch (error) {
    console.error(`Opening the database failed: ${(error as Error).message}`);
    return 1;
  }
  try {
    const actor = `cli:${process.env.USER ?? 'unknown'}`;
    if (command === 'create') {
      if (!values.name || !values.scopes) {
        console.error(`create needs --name and --scopes\n${USAGE}`);
        return 2;
      }
      const scopes = values.scopes.split(',').map((scope) => scope.trim());
      const invalid = scopes.filter((scope) => !Scope.safeParse(scope).success);
      if (invalid.length > 0) {
        console.error(`unknown scope(s): ${invalid.join(', ')}; use ${SCOPES.join(', ')}`);
        return 2;
      }
      const created = await createToken(connection.db, { name: values.name, scopes: scopes as Scope[], actor });
      console.log(`Created token "${created.name}" with scopes ${created.scopes.join(',')}. It is shown only this once:`);
      console.log(created.token);
    } else if (command === 'revoke') {
      if (!values.name) {
        console.error(`revoke needs --name\n${USAGE}`);
        return 2;
      }
      await revokeToken(connection.db, { name: values.name, actor });
      console.log(`Revoked token "${values.name}".`);
    } else {
      for (const token of await listTokens(connection.db)) {
        const state = token.revokedAt ? `revoked ${token.revokedAt.toISOString()}` : 'active';
        console.log(`${token.name}\t${token.scopes.join(',')}\t${state}`);
      }
    }
    return 0;
  } catch (error) {
    console.error(`token ${command} failed: ${(error as Error).message}`);
    return 1;
  } finally {
    await connection.close();
  }
}

process.exitCode = await main();
