/**
 * Starts the production server, scripts/server.mjs, on http://127.0.0.1:3000 (HOST and PORT override it)
 * and forwards SIGINT and SIGTERM to it. Before that it applies migrations and, when no active token
 * exists yet, creates an admin token and writes it to DATA_DIR/admin-token with mode 0600, so a fresh
 * install can be used at once without printing a secret.
 */
import fs from 'node:fs';
import path from 'node:path';
import { spawn } from 'node:child_process';
import { isNull, sql } from 'drizzle-orm';
import { connectDatabase } from '../db/client';
import { apiTokens } from '../db/schema';
import { createToken } from '../server/registry/tokens';
import { getSettings } from '../server/settings';

const settings = getSettings();
const connection = await connectDatabase({ databaseUrl: settings.DATABASE_URL, pgliteDir: settings.pgliteDir });
try {
  // Instances that start at once on an empty database take this lock in turn, so only the first creates a token.
  const created = await connection.db.transaction(async (tx) => {
    await tx.execute(sql`SELECT pg_advisory_xact_lock(hashtextextended('artifact-store:bootstrap-token', 0))`);
    const active = await tx.select({ id: apiTokens.id }).from(apiTokens).where(isNull(apiTokens.revokedAt)).limit(1);
    if (active.length > 0) return undefined;
    return createToken(tx, { name: 'admin', scopes: ['admin', 'read', 'retention', 'write'], actor: 'bootstrap' });
  });
  if (created) {
    const file = path.resolve(settings.DATA_DIR, 'admin-token');
    fs.mkdirSync(path.dirname(file), { recursive: true });
    fs.writeFileSync(file, `${created.token}\n`, { mode: 0o600 });
    console.log(`No API token existed, so an admin token named "admin" was created and written to ${file}.`);
    console.log(`Use it as "Authorization: Bearer $(cat ${file})" or to sign in to the console.`);
    console.log('Create more tokens with POST /api/v1/tokens, or with "npm run token -- create --name NAME --scopes read,write" while the server is stopped.');
  }
} finally {
  await connection.close();
}

const host = process.env.HOST ?? '127.0.0.1';
const port = process.env.PORT ?? '3000';
console.log(`Starting artifact-store on http://${host}:${port}`);
const serverEntry = path.resolve(import.meta.dirname, 'server.mjs');
const child = spawn(process.execPath, [serverEntry], { stdio: 'inherit', env: { ...process.env, HOST: host, PORT: port } });
for (const signal of ['SIGINT', 'SIGTERM'] as const) process.on(signal, () => child.kill(signal));
child.on('exit', (code, signal) => process.exit(code ?? (signal ? 1 : 0)));
