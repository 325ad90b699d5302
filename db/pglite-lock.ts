import fs from 'node:fs';
import path from 'node:path';
import { isProcessAlive } from '../server/process-alive';

export const PGLITE_LOCK_FILE = 'artifact-store.lock';

/**
 * Takes the embedded database in dataDir for this process and returns the function that gives it back.
 * PGlite has no locking of its own, and two processes writing one data directory corrupt it, so a lock
 * file holds the owner's pid.
 *
 * The lock file is created by a hard link from a file that already holds the pid, so it never exists
 * empty. A lock whose process has exited is taken over under a second lock file, the takeover file:
 * its holder reads the lock again and replaces it by a rename only if it still names the dead process.
 * Two processes that both found the same dead owner therefore cannot both take the lock: the second to
 * get the takeover file finds the first one's pid.
 */
export function lockPgliteDirectory(dataDir: string): () => void {
  const lockPath = path.join(dataDir, PGLITE_LOCK_FILE);
  const ownPid = String(process.pid);
  for (let attempt = 0; attempt < 3; attempt += 1) {
    if (createPidFile(lockPath) || takeOverStaleLock(dataDir, lockPath)) {
      return () => {
        if (readIfExists(lockPath) === ownPid) fs.rmSync(lockPath, { force: true });
      };
    }
  }
  throw new Error(`Failed to take the lock file ${lockPath} in 3 attempts, because other processes keep opening and closing the same embedded database. Start again.`);
}

/** Creates `file` holding this process's pid; false when it exists already. */
function createPidFile(file: string): boolean {
  const source = `${file}.${process.pid}`;
  fs.writeFileSync(source, String(process.pid));
  try {
    fs.linkSync(source, file);
    return true;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw error;
  } finally {
    fs.rmSync(source, { force: true });
  }
}

/**
 * Takes the lock from an owner that has exited. Returns false when the lock is gone by now (the caller
 * tries again) and throws when a live process holds it or is taking it over.
 */
function takeOverStaleLock(dataDir: string, lockPath: string): boolean {
  const owner = readIfExists(lockPath);
  if (owner === undefined) return false;
  if (isLiveOwner(owner)) throw inUseError(dataDir, owner);

  const takeoverPath = `${lockPath}.takeover`;
  if (!createPidFile(takeoverPath)) {
    const taker = readIfExists(takeoverPath);
    if (taker === undefined) return false;
    if (isLiveOwner(taker)) {
      // A taker that finds the lock already replaced gives up, so the owner is the one the lock names by now.
      const current = readIfExists(lockPath);
      if (current !== undefined && current !== owner && isLiveOwner(current)) throw inUseError(dataDir, current);
      throw inUseError(dataDir, taker);
    }
    throw new Error(
      `Process ${taker} exited while taking over the lock of the embedded database in ${dataDir}, so it is not known ` +
        `whether another process uses it. When no process uses it, remove ${takeoverPath} and ${lockPath} and start again.`,
    );
  }
  try {
    const current = readIfExists(lockPath);
    if (current === undefined) return false;
    if (current !== owner) throw inUseError(dataDir, current);
    const replacement = `${lockPath}.${process.pid}`;
    fs.writeFileSync(replacement, String(process.pid));
    fs.renameSync(replacement, lockPath);
    return true;
  } finally {
    fs.rmSync(takeoverPath, { force: true });
  }
}

function isLiveOwner(content: string): boolean {
  const pid = Number(content);
  return Number.isSafeInteger(pid) && pid > 0 && isProcessAlive(pid);
}

function readIfExists(file: string): string | undefined {
  try {
    return fs.readFileSync(file, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw error;
  }
}

function inUseError(dataDir: string, owner: string): Error {
  return new Error(
    `The embedded database in ${dataDir} is in use by process ${owner}; it allows one process at a time. ` +
      'Stop that process first, or use the HTTP API while it runs (for tokens: POST /api/v1/tokens).',
  );
}
