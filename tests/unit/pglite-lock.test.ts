import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { PGLITE_LOCK_FILE, lockPgliteDirectory } from '@/db/pglite-lock';

const ROOT = path.resolve(import.meta.dirname, '../..');
const LOCK_MODULE = path.join(ROOT, 'db/pglite-lock.ts');

// Each contender waits for the same instant, tries the lock, reports on stdout or stderr and keeps the
// lock for a second, so that every other contender tries while it is held.
const CONTENDER = `
const { lockPgliteDirectory } = await import(process.env.LOCK_MODULE);
while (Date.now() < Number(process.env.START_AT));
try {
  const unlock = lockPgliteDirectory(process.env.DATA_DIR);
  console.log('locked');
  await new Promise((resolve) => setTimeout(resolve, 1000));
  unlock();
} catch (error) {
  console.error(error.message);
  process.exitCode = 1;
}
`;

interface Outcome {
  pid: number;
  code: number | null;
  stdout: string;
  stderr: string;
}

function contend(dataDir: string, count: number): Promise<Outcome[]> {
  const startAt = Date.now() + 1500;
  return Promise.all(
    Array.from({ length: count }, () => {
      const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', CONTENDER], {
        cwd: ROOT,
        env: { ...process.env, LOCK_MODULE, DATA_DIR: dataDir, START_AT: String(startAt) },
      });
      let stdout = '';
      let stderr = '';
      child.stdout.on('data', (chunk: Buffer) => (stdout += chunk));
      child.stderr.on('data', (chunk: Buffer) => (stderr += chunk));
      return new Promise<Outcome>((resolve) => child.on('close', (code) => resolve({ pid: child.pid!, code, stdout, stderr })));
    }),
  );
}

function exitedPid(): number {
  const child = spawnSync(process.execPath, ['-e', 'console.log(process.pid)'], { encoding: 'utf8' });
  return Number(child.stdout.trim());
}

function expectOneWinner(outcomes: Outcome[]): void {
  const winners = outcomes.filter((outcome) => outcome.stdout.includes('locked'));
  expect(winners, JSON.stringify(outcomes, null, 2)).toHaveLength(1);
  expect(winners[0].code).toBe(0);
  for (const loser of outcomes.filter((outcome) => outcome !== winners[0])) {
    expect(loser.code).toBe(1);
    expect(loser.stderr).toContain(`is in use by process ${winners[0].pid};`);
  }
}

describe('embedded database lock', () => {
  let dataDir: string;
  beforeEach(() => {
    dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'pglite-lock-'));
  });
  afterEach(() => fs.rmSync(dataDir, { recursive: true, force: true }));

  it('admits one of six on a free directory', async () => {
    expectOneWinner(await contend(dataDir, 6));
    expect(fs.readdirSync(dataDir)).toEqual([]);
  });

  it('admits one of six on a stale lock', async () => {
    for (let round = 0; round < 3; round += 1) {
      fs.writeFileSync(path.join(dataDir, PGLITE_LOCK_FILE), String(exitedPid()));
      expectOneWinner(await contend(dataDir, 6));
      expect(fs.readdirSync(dataDir)).toEqual([]);
    }
  });

  it('rejects a live owner', () => {
    const lockPath = path.join(dataDir, PGLITE_LOCK_FILE);
    fs.writeFileSync(lockPath, String(process.ppid));
    expect(() => lockPgliteDirectory(dataDir)).toThrow(`is in use by process ${process.ppid};`);
    expect(fs.readFileSync(lockPath, 'utf8')).toBe(String(process.ppid));
  });

  it('stops on a leftover takeover file', () => {
    const lockPath = path.join(dataDir, PGLITE_LOCK_FILE);
    const deadOwner = String(exitedPid());
    fs.writeFileSync(lockPath, deadOwner);
    fs.writeFileSync(`${lockPath}.takeover`, String(exitedPid()));
    expect(() => lockPgliteDirectory(dataDir)).toThrow(`remove ${lockPath}.takeover and ${lockPath} and start again`);
    expect(fs.readFileSync(lockPath, 'utf8')).toBe(deadOwner);
  });

  it('unlock keeps a foreign lock', () => {
    const lockPath = path.join(dataDir, PGLITE_LOCK_FILE);
    const unlock = lockPgliteDirectory(dataDir);
    expect(fs.readFileSync(lockPath, 'utf8')).toBe(String(process.pid));
    expect(fs.readdirSync(dataDir)).toEqual([PGLITE_LOCK_FILE]);
    fs.writeFileSync(lockPath, String(process.ppid));
    unlock();
    expect(fs.readFileSync(lockPath, 'utf8')).toBe(String(process.ppid));
  });
});
