import { createHash, randomBytes } from 'node:crypto';
import { readFileSync, readlinkSync } from 'node:fs';
import fs from 'node:fs/promises';
import path from 'node:path';
import { isProcessAlive } from '../process-alive';

/**
 * Naming and crash recovery of the filesystem backend's temporary files.
 *
 * A temporary file is named `<scope>-<pid>-<process token>-<random>.partial`:
 * - scope: 16 hex characters hashed from the Linux boot id and the pid namespace of the writing
 *   process, or `unknown` where /proc is not available. Two processes with the same scope see the
 *   same pid numbers, so one can test whether the other's pid is alive.
 * - pid: process.pid of the writer.
 * - process token: 16 random hex characters chosen once per process, which distinguishes this process's
 *   files from those of an earlier process that had the same pid.
 *
 * Several processes, on one host or on several hosts sharing a network file system, may write to the
 * same root at once. A file in tmp/ is removed only when one of these holds:
 * 1. It carries this process's token and no writer of this process has it open (a failed cleanup).
 * 2. It carries this process's scope, and its pid is not alive (process.kill(pid, 0) fails with ESRCH)
 *    or equals this process's pid with another token, so its writer has exited.
 * 3. Its modification time is older than the stale period (24 hours by default). This is the only rule
 *    for files from other hosts, other pid namespaces or systems without /proc. Every write updates the
 *    modification time, so a writer that is still running must not sit idle for that long.
 * Files whose names do not have this form are left alone. A zombie or a reused pid counts as alive,
 * which only delays removal until rule 3.
 */

export const TEMPORARY_FILE_SUFFIX = '.partial';

/** Default of FilesystemBackend's staleTemporaryFileMs. */
export const DEFAULT_STALE_TEMPORARY_FILE_MS = 24 * 60 * 60 * 1000;

const TEMPORARY_NAME_PATTERN = /^([0-9a-f]{16}|unknown)-([1-9][0-9]{0,9})-([0-9a-f]{16})-[0-9a-f]{16}\.partial$/;

const PROCESS_TOKEN = randomBytes(8).toString('hex');

/**
 * Absolute paths of the temporary files that writers of this process have open. The set is shared by
 * every backend instance in the process, so one instance never removes another instance's live file.
 */
const openTemporaryFiles = new Set<string>();

let processScope: string | undefined;

function getProcessScope(): string {
  if (processScope !== undefined) return processScope;
  try {
    const bootId = readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim();
    const pidNamespace = readlinkSync('/proc/self/ns/pid');
    processScope = createHash('sha256').update(`${bootId}\n${pidNamespace}`).digest('hex').slice(0, 16);
  } catch {
    processScope = 'unknown';
  }
  return processScope;
}

/** Builds a new temporary file path in `directory` and marks it open until releaseTemporaryFile. */
export function reserveTemporaryFile(directory: string): string {
  const name = `${getProcessScope()}-${process.pid}-${PROCESS_TOKEN}-${randomBytes(8).toString('hex')}${TEMPORARY_FILE_SUFFIX}`;
  const filePath = path.join(directory, name);
  openTemporaryFiles.add(filePath);
  return filePath;
}

/** Marks a temporary file as no longer open, so recovery may remove it if it still exists. */
export function releaseTemporaryFile(filePath: string): void {
  openTemporaryFiles.delete(filePath);
}

/** Returns true when the rules in the file comment allow removing this temporary file. */
function isAbandoned(filePath: string, modifiedAtMs: number, staleAfterMs: number, nowMs: number): boolean {
  const match = TEMPORARY_NAME_PATTERN.exec(path.basename(filePath));
  if (!match) return false;
  if (openTemporaryFiles.has(filePath)) return false;

  const [, scope, pidText, token] = match;
  if (token === PROCESS_TOKEN) return true;

  const ownScope = getProcessScope();
  if (ownScope !== 'unknown' && scope === ownScope) {
    const pid = Number(pidText);
    if (pid === process.pid || !isProcessAlive(pid)) return true;
  }

  return nowMs - modifiedAtMs > staleAfterMs;
}

/** Removes the abandoned temporary files in `directory` and returns their paths; a missing directory has none. */
export async function removeAbandonedTemporaryFiles(directory: string, staleAfterMs: number): Promise<string[]> {
  let names: string[];
  try {
    names = await fs.readdir(directory);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw error;
  }

  const removed: string[] = [];
  const nowMs = Date.now();
  for (const name of names) {
    const filePath = path.join(directory, name);
    let stats;
    try {
      stats = await fs.lstat(filePath);
    } catch (error) {
      // Committed or removed by its writer since readdir.
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') continue;
      throw error;
    }
    if (!stats.isFile() || !isAbandoned(filePath, stats.mtimeMs, staleAfterMs, nowMs)) continue;

    try {
      await fs.unlink(filePath);
      removed.push(filePath);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
    }
  }
  return removed;
}
