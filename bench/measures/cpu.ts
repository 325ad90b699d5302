import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import { median } from './types';

const CLOCK_TICKS_PER_SECOND = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;

/** CPU time (user + system) in milliseconds of one /proc stat file: a process's (all threads) or one thread's. */
function cpuMillisecondsOfStat(statPath: string): number {
  const stat = fs.readFileSync(statPath, 'utf8');
  // Fields after the command: utime is field 14 and stime field 15 of proc(5).
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return ((Number(fields[11]) + Number(fields[12])) * 1000) / CLOCK_TICKS_PER_SECOND;
}

/** CPU time (user + system, all threads) in milliseconds of the processes that `include` selects, from /proc. */
function cpuMillisecondsOf(include: (pid: number, command: string) => boolean): number {
  let total = 0;
  for (const entry of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const command = fs.readFileSync(`/proc/${entry}/comm`, 'utf8').trim();
      if (include(Number(entry), command)) total += cpuMillisecondsOfStat(`/proc/${entry}/stat`);
    } catch {
      continue; // The process exited after readdir.
    }
  }
  return total;
}

/** CPU milliseconds spent per operation by the server, by PostgreSQL's processes and by this benchmark client. */
export interface CpuSplit {
  server: number;
  /** The part of `server` spent by its main thread, which runs JavaScript; the rest is worker and I/O threads. */
  serverMainThread: number;
  postgres: number;
  client: number;
}

/**
 * Starts counting the CPU time of the server process, of every process named `postgres` (the backends
 * serving the server and the writers), and of this process, which sends the load. `stop(operations)`
 * returns each share per operation. Other work on the machine does not count.
 */
export function startCpuAccount(serverPid: number): { stop(operations: number): CpuSplit } {
  const server = cpuMillisecondsOf((pid) => pid === serverPid);
  const mainThreadStat = `/proc/${serverPid}/task/${serverPid}/stat`;
  const serverMainThread = cpuMillisecondsOfStat(mainThreadStat);
  const postgres = cpuMillisecondsOf((_pid, command) => command === 'postgres');
  const client = process.cpuUsage();
  return {
    stop(operations) {
      const clientUsage = process.cpuUsage(client);
      return {
        server: (cpuMillisecondsOf((pid) => pid === serverPid) - server) / operations,
        serverMainThread: (cpuMillisecondsOfStat(mainThreadStat) - serverMainThread) / operations,
        postgres: (cpuMillisecondsOf((_pid, command) => command === 'postgres') - postgres) / operations,
        client: (clientUsage.user + clientUsage.system) / 1000 / operations,
      };
    },
  };
}

/** Formats the median of each share, as in "server 1.04 ms (main thread 0.80 ms), PostgreSQL 0.11 ms, …". */
export function describeCpuSplits(splits: CpuSplit[], operation: string): string {
  const part = (key: keyof CpuSplit) => median(splits.map((split) => split[key])).toFixed(2);
  return (
    `CPU per ${operation} (median of runs): server ${part('server')} ms (main thread ${part('serverMainThread')} ms), ` +
    `PostgreSQL ${part('postgres')} ms, benchmark client ${part('client')} ms.`
  );
}
