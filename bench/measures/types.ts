import { execFile } from 'node:child_process';
import fs from 'node:fs';
import { promisify } from 'node:util';

const execFileAsync = promisify(execFile);

/** One figure of the benchmark table: our measurement, its baseline from the same run, and the goal. */
export interface Measurement {
  id: string;
  what: string;
  unit: string;
  /** One value per run; the table shows the median with min and max. */
  values: number[];
  baselineWhat?: string;
  baselineValues?: number[];
  /** How to read value against baseline: `ratio` divides baseline time by ours (higher is better). */
  goal: string;
  /** Whether the goal is met, judged from the medians. */
  goalMet: (median: number, baselineMedian: number | undefined) => boolean;
  notes?: string;
}

export function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2;
}

export function secondsSince(startNs: bigint): number {
  return Number(process.hrtime.bigint() - startNs) / 1e9;
}

/**
 * Puts the page cache into the same state before each timed upload: writes every dirty page to disk,
 * drops the clean pages (when run as root) and reads `source` back in, so the upload reads it from memory.
 * On the Firecracker VMs of these runs (Linux 6.18), writing into a page cache that had grown into memory
 * unused since boot cost several times the system time: dd of 1 GiB with conv=fsync took 0.7 to 0.9 s in each of
 * 6 runs with the cache dropped before each, against 3 to 4 s from the third run on without. Without this,
 * a run's time depended on how much the runs before it had written.
 */
export async function resetPageCache(source: string): Promise<void> {
  await execFileAsync('sync');
  try {
    fs.writeFileSync('/proc/sys/vm/drop_caches', '1');
  } catch (error) {
    if (!warnedAboutDropCaches) console.error(`[bench] could not drop the page cache (${(error as Error).message}); upload times depend on earlier runs`);
    warnedAboutDropCaches = true;
  }
  for await (const chunk of fs.createReadStream(source, { highWaterMark: 1024 * 1024 })) void chunk;
}

let warnedAboutDropCaches = false;
