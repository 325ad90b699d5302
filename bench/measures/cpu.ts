import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import { median } from './types';

const CLOCK_TICKS_PER_SECOND = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;

/** CPU time (user + system, all threads) in milliseconds of the processes that `include` selects, from /proc. */
function cpuMillisecondsOf(include: (pid: number, command: string) => boolean): number {
  let ticks = 0;
  for (const entry of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    let stat: string;
    try {
      stat = fs.readFileSync(`/proc/${entry}/stat`, 'utf8');
    } catch {
      continue; // The process exited after readdir.
    }
    const commandEnd = stat.lastIndexOf(')');
    const command = stat.slice(stat.indexOf('(') + 1, commandEnd);
    if (!include(Number(entry), command)) continue;
    // Fields after the command: state is field 3, utime field 14 and stime field 15 (proc(5)).
    const fields = stat.slice(commandEnd + 2).split(' ');
    ticks += Number(fields[11]) + Number(fields[12]);
  }
  return (ticks * 1000) / CLOCK_TICKS_PER_SECOND;
}

/** CPU milliseconds spent per operation by the server, by PostgreSQL's processes and by this benchmark client. */
export interface CpuSplit {
  server: number;
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
  const postgres = cpuMillisecondsOf((_pid, command) => command === 'postgres');
  const client = process.cpuUsage();
  return {
    stop(operations) {
      const clientUsage = process.cpuUsage(client);
      return {
        server: (cpuMillisecondsOf((pid) => pid === serverPid) - server) / operations,
        postgres: (cpuMillisecondsOf((_pid, command) => command === 'postgres') - postgres) / operations,
        client: (clientUsage.user + clientUsage.system) / 1000 / operations,
      };
    },
  };
}

/** Formats the median of each share, as in "server 1.04 ms, PostgreSQL 0.11 ms, client 0.33 ms". */
export function describeCpuSplits(splits: CpuSplit[], operation: string): string {
  const part = (key: keyof CpuSplit) => median(splits.map((split) => split[key])).toFixed(2);
  return `CPU per ${operation} (median of runs): server ${part('server')} ms, PostgreSQL ${part('postgres')} ms, benchmark client ${part('client')} ms.`;
}
