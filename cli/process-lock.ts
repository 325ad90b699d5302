import fs from 'node:fs';
import path from 'node:path';
import { CommandError } from './errors';

/** A held lock file; `release` removes it and may be called more than once. */
export interface ProcessLock {
  file: string;
  release(): void;
}

function isRunning(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    // EPERM: the process exists but belongs to another user.
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function readPid(file: string): number | undefined {
  try {
    const pid = Number(fs.readFileSync(file, 'utf8').trim());
    return Number.isSafeInteger(pid) && pid > 0 ? pid : undefined;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw error;
  }
}

/**
 * Takes an exclusive lock by creating `file` with the process id in it. The file appears atomically
 * with its content (written to a temporary file, then hard-linked to `file`, which fails when `file`
 * exists), so another process never reads an empty lock. A lock whose process is no longer running,
 * left by a killed run, is taken over. A lock held by a running process raises CommandError with
 * `description` and that process id.
 *
 * NOTE: a killed run's lock looks held when the system has given its process id to another process.
 * The message then names the lock file to delete.
 */
export function acquireProcessLock(file: string, description: string): ProcessLock {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  const temporary = `${file}.${process.pid}.tmp`;
  fs.writeFileSync(temporary, `${process.pid}\n`, { mode: 0o600 });
  try {
    for (let attempt = 0; attempt < 5; attempt += 1) {
      try {
        fs.linkSync(temporary, file);
        let released = false;
        return {
          file,
          release() {
            if (released) return;
            released = true;
            fs.rmSync(file, { force: true });
          },
        };
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
      }

      const holder = readPid(file);
      if (holder !== undefined && holder !== process.pid && isRunning(holder)) {
        throw new CommandError(`${description} is already running as process ${holder}. Wait for it to finish, or stop it; if no such run exists, delete ${file}.`);
      }
      // The holder is gone. Move its lock aside under a name of our own and delete it only if it is still
      // the stale one, because another process may have taken over the lock between the read and the rename.
      const aside = `${file}.${process.pid}.stale`;
      try {
        fs.renameSync(file, aside);
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code === 'ENOENT') continue;
        throw error;
      }
      const movedHolder = readPid(aside);
      if (movedHolder === holder) {
        fs.rmSync(aside, { force: true });
        continue;
      }
      try {
        fs.linkSync(aside, file);
      } finally {
        fs.rmSync(aside, { force: true });
      }
      throw new CommandError(`${description} is already running as process ${movedHolder ?? 'unknown'}. Wait for it to finish, or stop it; if no such run exists, delete ${file}.`);
    }
    throw new CommandError(`Could not take the lock ${file}: other processes kept replacing it. Run the command again.`);
  } finally {
    fs.rmSync(temporary, { force: true });
  }
}
