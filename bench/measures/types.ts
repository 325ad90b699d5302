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
