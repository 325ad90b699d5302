import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { connectDatabase } from '@/db/client';
import { createToken, type Scope } from '@/server/registry/tokens';
import { createTestDatabase, ON_POSTGRES } from './database';

const ROOT = path.resolve(import.meta.dirname, '../..');

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
    server.on('error', reject);
  });
}

/** A fresh database and storage root shared by one or more server processes of a test file. */
export interface TestEnvironment {
  dir: string;
  storageRoot: string;
  env: Record<string, string>;
  /** The admin token created before any server started. */
  adminToken: string;
  /** Creates a token directly in the database (PGlite: only while no server runs). */
  createToken(name: string, scopes: Scope[]): Promise<string>;
  cleanup(): Promise<void>;
}

export async function createTestEnvironment(extraEnv: Record<string, string> = {}): Promise<TestEnvironment> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'artifact-store-test-'));
  const storageRoot = path.join(dir, 'blobs');
  const database = ON_POSTGRES ? await createTestDatabase() : undefined;
  const env: Record<string, string> = {
    DATA_DIR: path.join(dir, 'data'),
    STORAGE_ROOT: storageRoot,
    LOG_LEVEL: 'info',
    ...(database ? { DATABASE_URL: database.url } : {}),
    ...extraEnv,
  };
  const pgliteDir = path.join(dir, 'data', 'pglite');

  const makeToken = async (name: string, scopes: Scope[]) => {
    const connection = await connectDatabase({ databaseUrl: database?.url, pgliteDir, migrationsFolder: path.join(ROOT, 'db/migrations') });
    try {
      return (await createToken(connection.db, { name, scopes, actor: 'test-setup' })).token;
    } finally {
      await connection.close();
    }
  };
  const adminToken = await makeToken('test-admin', ['admin', 'read', 'retention', 'write']);

  return {
    dir,
    storageRoot,
    env,
    adminToken,
    createToken: makeToken,
    async cleanup() {
      await database?.drop();
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** A retention class as RETENTION_CLASSES_FILE lists it. */
export interface RetentionClassConfig {
  class_id: string;
  default_duration_seconds: number | null;
  deletion_strategy: string;
}

/** Writes a RETENTION_CLASSES_FILE into the environment's directory and points the environment's servers at it. */
export function useRetentionClasses(environment: TestEnvironment, classes: RetentionClassConfig[]): void {
  const classesFile = path.join(environment.dir, 'retention-classes.json');
  fs.writeFileSync(classesFile, JSON.stringify({ retention_classes: classes }));
  environment.env.RETENTION_CLASSES_FILE = classesFile;
}

export interface TestServer {
  url: string;
  port: number;
  process: ChildProcess;
  /** Everything the server printed so far. */
  output(): string;
  /** Stops the server with SIGTERM and waits for it to exit. */
  stop(): Promise<void>;
  /** Kills the server with SIGKILL and waits for it to exit. */
  kill(): Promise<void>;
}

/** What scripts/server.mjs prints before it exits because another process has bound its port. */
const PORT_IN_USE_PATTERN = /failed to listen on \S+: Error: listen EADDRINUSE/;

/**
 * Starts the production server on a free loopback port with the environment's settings and resolves once
 * /health responds. It runs scripts/server.mjs under plain node, so the child process is the server itself.
 * freePort releases the port before the server binds it, so another process can take it in between. The
 * server then exits, and up to three attempts are made, each on a new port. Any other early exit throws
 * at once. `options.firstPort` sets the port of the first attempt.
 */
export async function startServer(
  environment: TestEnvironment,
  extraEnv: Record<string, string> = {},
  options: { nodeArgs?: string[]; firstPort?: number } = {},
): Promise<TestServer> {
  const attempts = 3;
  for (let attempt = 1; ; attempt++) {
    const port = attempt === 1 && options.firstPort !== undefined ? options.firstPort : await freePort();
    try {
      return await startServerOnPort(environment, extraEnv, options.nodeArgs ?? [], port);
    } catch (error) {
      const message = error instanceof Error ? error.message : String(error);
      if (attempt === attempts || !PORT_IN_USE_PATTERN.test(message)) throw error;
      console.warn(`server could not listen on port ${port} (attempt ${attempt} of ${attempts}), starting again on a new port:\n${message}`);
    }
  }
}

/** `nodeArgs` are Node.js options such as --cpu-prof, which NODE_OPTIONS does not accept. */
async function startServerOnPort(environment: TestEnvironment, extraEnv: Record<string, string>, nodeArgs: string[], port: number): Promise<TestServer> {
  const child = spawn(process.execPath, [...nodeArgs, path.join(ROOT, 'scripts/server.mjs')], {
    cwd: ROOT,
    env: { ...process.env, NEXT_TELEMETRY_DISABLED: '1', ...environment.env, ...extraEnv, HOST: '127.0.0.1', PORT: String(port) },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  // TEST_SERVER_LOG_DIR keeps each server's output in a file there, for debugging a failed run.
  const logFile = process.env.TEST_SERVER_LOG_DIR ? path.join(process.env.TEST_SERVER_LOG_DIR, `server-${port}.log`) : undefined;
  if (logFile) fs.mkdirSync(path.dirname(logFile), { recursive: true });
  const record = (chunk: Buffer) => {
    output += chunk;
    if (logFile) fs.appendFileSync(logFile, chunk);
  };
  child.stdout!.on('data', record);
  child.stderr!.on('data', record);
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const url = `http://127.0.0.1:${port}`;

  const deadline = Date.now() + 60_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`server exited with ${child.exitCode} before it was ready:\n${output}`);
    // Until the server prints that it listens, the process that took the port would respond in its place.
    if (output.includes(`listening on ${url}`)) {
      try {
        const response = await fetch(`${url}/api/v1/health`);
        await response.arrayBuffer();
        if (response.status === 200 || response.status === 503) break;
      } catch {
        // Not ready yet.
      }
    }
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`server did not become ready within 60 s:\n${output}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }

  return {
    url,
    port,
    process: child,
    output: () => output,
    async stop() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      const forced = setTimeout(() => child.kill('SIGKILL'), 10_000);
      await exited;
      clearTimeout(forced);
    },
    async kill() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      await exited;
    },
  };
}
