import { execFileSync } from 'node:child_process';
import os from 'node:os';

/** The machine details every benchmark prints beside its figures. */
export function machineDetails(): Record<string, string> {
  let kernel = os.release();
  try {
    kernel = execFileSync('uname', ['-srm'], { encoding: 'utf8' }).trim();
  } catch {
    // uname is missing; os.release() stays.
  }
  return {
    date: new Date().toISOString(),
    cpu: os.cpus()[0]?.model ?? 'unknown',
    cores: String(os.cpus().length),
    memory_gib: (os.totalmem() / 1024 ** 3).toFixed(1),
    node: process.version,
    kernel,
  };
}

/** Resident set size in bytes of a process and all its descendants, read from /proc. */
export function treeRssBytes(rootPid: number): number {
  const children = new Map<number, number[]>();
  for (const entry of execFileSync('ps', ['-e', '-o', 'pid=,ppid='], { encoding: 'utf8' }).trim().split('\n')) {
    const [pid, ppid] = entry.trim().split(/\s+/).map(Number);
    children.set(ppid, [...(children.get(ppid) ?? []), pid]);
  }
  let total = 0;
  const stack = [rootPid];
  while (stack.length > 0) {
    const pid = stack.pop()!;
    try {
      const status = execFileSync('cat', [`/proc/${pid}/status`], { encoding: 'utf8' });
      const match = /VmRSS:\s+(\d+) kB/.exec(status);
      if (match) total += Number(match[1]) * 1024;
    } catch {
      // The process exited between listing and reading.
    }
    stack.push(...(children.get(pid) ?? []));
  }
  return total;
}
