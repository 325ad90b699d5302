import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

/**
 * State of a push that lets a later run continue it: the package it created and the tus upload URL of
 * each file whose upload started. Saved as JSON under the state directory.
 */
export interface PushState {
  version: 2;
  package_id: string;
  /** Started tus uploads by package path, each removed once its file is complete on the server. */
  uploads: Record<string, StartedUpload>;
}

/**
 * State of a push whose package is being created: the Idempotency-Key of the create request, saved
 * before the request, so a run killed before the response gets that package on the next run.
 */
export interface PendingPushState {
  version: 2;
  idempotency_key: string;
}

/** A tus upload and the local file it was sending, so a changed file is not resumed with other bytes. */
export interface StartedUpload {
  url: string;
  size_bytes: number;
  mtime_ms: number;
}

/** Returns the state directory: $ARTIFACT_STORE_STATE_DIR, else $XDG_STATE_HOME/artifact-store, else ~/.local/state/artifact-store. */
export function stateDirectory(): string {
  if (process.env.ARTIFACT_STORE_STATE_DIR) return path.resolve(process.env.ARTIFACT_STORE_STATE_DIR);
  const base = process.env.XDG_STATE_HOME || path.join(os.homedir(), '.local', 'state');
  return path.join(base, 'artifact-store');
}

/**
 * Names the state file after everything that identifies one push: the server, the directory and the
 * package fields. Running the same command again finds the same file; changing any of them starts a
 * new package.
 */
export function stateFilePath(key: Record<string, unknown>): string {
  const digest = crypto.createHash('sha256').update(JSON.stringify(key)).digest('hex').slice(0, 32);
  return path.join(stateDirectory(), `push-${digest}.json`);
}

/** Reads a state file; returns undefined when it does not exist or is not a state of this version. */
export function readPushState(file: string): PushState | PendingPushState | undefined {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw error;
  }
  try {
    const parsed = JSON.parse(text) as Partial<PushState & PendingPushState>;
    if (parsed.version !== 2) return undefined;
    if (typeof parsed.package_id === 'string' && parsed.uploads && typeof parsed.uploads === 'object') return parsed as PushState;
    if (typeof parsed.idempotency_key === 'string' && parsed.package_id === undefined) return { version: 2, idempotency_key: parsed.idempotency_key };
  } catch {
    // A torn or foreign file is ignored; the push starts a new package.
  }
  return undefined;
}

/**
 * Writes the state atomically (temporary file, fsync, rename), so a kill at any moment leaves either
 * the old or the new state. Synchronous so that concurrent uploads cannot interleave two writes.
 */
export function writePushState(file: string, state: PushState | PendingPushState): void {
  fs.mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });
  const temporary = `${file}.${process.pid}.tmp`;
  const handle = fs.openSync(temporary, 'w', 0o600);
  try {
    fs.writeSync(handle, JSON.stringify(state, null, 2));
    fs.fsyncSync(handle);
  } finally {
    fs.closeSync(handle);
  }
  fs.renameSync(temporary, file);
}

export function removePushState(file: string): void {
  fs.rmSync(file, { force: true });
}
