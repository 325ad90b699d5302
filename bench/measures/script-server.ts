import { spawn } from 'node:child_process';
import path from 'node:path';

const ROOT = path.resolve(import.meta.dirname, '../..');

/** A helper server of the benchmark in its own process: its loopback URL, its pid and how to stop it. */
export interface ScriptServer {
  url: string;
  pid: number;
  stop(): void;
}

/** Starts `node bench/SCRIPT DIRECTORY`, which prints its port on stdout once it listens. */
export async function startScriptServer(script: string, directory: string): Promise<ScriptServer> {
  const child = spawn(process.execPath, [path.join(ROOT, 'bench', script), directory], { cwd: ROOT, stdio: ['ignore', 'pipe', 'inherit'] });
  const port = await new Promise<string>((resolve, reject) => {
    child.stdout!.once('data', (chunk) => resolve(String(chunk).trim()));
    child.once('exit', (code) => reject(new Error(`bench/${script} exited with ${code}`)));
  });
  return { url: `http://127.0.0.1:${port}`, pid: child.pid!, stop: () => child.kill('SIGTERM') };
}
