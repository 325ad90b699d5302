/**
 * Runs the benchmarks against a production build (`next build` + scripts/server.mjs) on loopback and writes a
 * Markdown table and the raw numbers to bench/results/ with the machine's details.
 *
 *   npm run bench              full sizes (1 GiB files, 10,000 small files, 1 to 4 GiB for memory, 1,000,000 packages)
 *   npm run bench -- --quick   small sizes, one run each; finishes in about two minutes
 *   npm run bench -- --only P3 just the named figures (comma-separated ids)
 *   npm run bench -- --cpu-prof DIR  also writes CPU profiles of the server to DIR
 *
 * The database is PostgreSQL at BENCH_DATABASE_URL (default postgres://postgres@127.0.0.1:5432/postgres);
 * each run creates and drops its own database there. Exits 1 when a measurement could not be taken,
 * not when a goal is missed.
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { machineDetails, treeRssBytes } from './machine';
import { median, type Measurement } from './measures/types';

const { values: options } = parseArgs({
  options: { quick: { type: 'boolean', default: false }, only: { type: 'string' }, 'cpu-prof': { type: 'string' } },
});
// --only P3,P7 runs just those figures (ids as in the table, without suffixes such as 'poll').
const selected = options.only ? new Set(options.only.split(',').map((id) => id.trim())) : undefined;
const quick = options.quick;
process.env.TEST_DATABASE_URL ??= process.env.BENCH_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';
process.env.NEXT_DIST_DIR ??= '.next-bench';

const { default: buildIfStale } = await import('../tests/support/global-setup');
const { createTestEnvironment, startServer } = await import('../tests/support/server');
const { ApiClient } = await import('../tests/support/client');
const { measureDigest } = await import('./measures/digest');
const { measureRawPut } = await import('./measures/raw-put');
const { measureSmallFiles } = await import('./measures/small-files');
const { measureEventLatency } = await import('./measures/event-latency');
const { measurePeakRss } = await import('./measures/peak-rss');
const { measureTusIngest, measureTusCompletion } = await import('./measures/tus');
const { measureScrubImpact } = await import('./measures/scrub-impact');
const { measureDownloads } = await import('./measures/downloads');
const { measurePackageListing } = await import('./measures/package-listing');

const ROOT = path.resolve(import.meta.dirname, '..');
const runs = quick ? 1 : 3;
const bigFileBytes = quick ? 128 * 1024 ** 2 : 1024 ** 3;
const scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'artifact-store-bench-'));
const bigFile = path.join(scratch, 'big.bin');
execFileSync('head', ['-c', String(bigFileBytes), '/dev/urandom'], { stdio: ['ignore', fs.openSync(bigFile, 'w'), 'inherit'] });

buildIfStale();
// The server's default log level, so that every request writes its access log line as in a default deployment.
const environment = await createTestEnvironment({ LOG_LEVEL: 'info', SWEEP_INTERVAL_SECONDS: '0' });
// --cpu-prof DIR writes V8 CPU profiles of the server (one per thread) to DIR when it stops, for Chrome DevTools.
const cpuProfileDirectory = options['cpu-prof'] ? path.resolve(options['cpu-prof']) : undefined;
const server = await startServer(environment, {}, { nodeArgs: cpuProfileDirectory ? ['--cpu-prof', `--cpu-prof-dir=${cpuProfileDirectory}`] : [] });
const api = new ApiClient(server.url, environment.adminToken);
await new Promise((resolve) => setTimeout(resolve, 1000));
const idleRssBytes = treeRssBytes(server.process.pid!);

const measurements: Measurement[] = [];
const failures: string[] = [];
async function attempt(name: string, measure: () => Promise<Measurement | Measurement[]>): Promise<void> {
  if (selected && !selected.has(name.split(' ')[0])) return;
  try {
    const result = await measure();
    measurements.push(...(Array.isArray(result) ? result : [result]));
    console.error(`[bench] ${name} done`);
  } catch (error) {
    failures.push(`${name}: ${(error as Error).message}`);
    console.error(`[bench] ${name} failed: ${(error as Error).message}`);
  }
}

try {
  await attempt('P7 digest', () => measureDigest(bigFile, runs));
  await attempt('P1 tus ingest', () => measureTusIngest(api, server.process.pid!, bigFile, runs));
  await attempt('P1b raw PUT', () => measureRawPut(api, server.process.pid!, bigFile, runs));
  await attempt('P2 tus completion', () => measureTusCompletion(api, bigFileBytes, runs));
  await attempt('P4 downloads', () => measureDownloads(api, server.process.pid!, bigFile, quick ? 2000 : 10_000, runs));
  await attempt('P8 scrub impact', () => measureScrubImpact(api, bigFile, runs));
  await attempt('P5a small files', () => measureSmallFiles(api, server.process.pid!, quick ? 1000 : 10_000, runs));
  await attempt('P6 event latency', () => measureEventLatency(api, environment.env.DATABASE_URL!, quick ? 50 : 500));
  await attempt('P3 peak RSS', () => measurePeakRss(api, server.process.pid!, quick ? [0.25, 0.5] : [1, 2, 4], idleRssBytes));
  // Last, because a million seeded rows would slow every figure that lists or writes packages.
  await attempt('P5b package listing', () =>
    measurePackageListing(api, environment.env.DATABASE_URL!, quick ? 100_000 : 1_000_000, quick ? 50 : 200),
  );
} finally {
  await server.stop();
  await environment.cleanup();
  fs.rmSync(scratch, { recursive: true, force: true });
}

const format = (values: number[]) => {
  const sorted = [...values].sort((a, b) => a - b);
  return `${median(values).toFixed(2)} (${sorted[0].toFixed(2)}–${sorted[sorted.length - 1].toFixed(2)})`;
};
const machine = machineDetails();
const lines = [
  `# Benchmark run ${machine.date}${quick ? ' (quick)' : ''}`,
  '',
  `Machine: ${machine.cpu}, ${machine.cores} cores, ${machine.memory_gib} GiB, Node ${machine.node}, ${machine.kernel}. Database: PostgreSQL.`,
  `Figures are medians with (min–max) over ${runs} run(s).`,
  '',
  '| id | what | ours | baseline | goal | met |',
  '| --- | --- | --- | --- | --- | --- |',
  ...measurements.map((item) => {
    const baseline = item.baselineValues ? `${format(item.baselineValues)} ${item.unit} (${item.baselineWhat})` : '—';
    const met = item.goalMet(median(item.values), item.baselineValues ? median(item.baselineValues) : undefined);
    return `| ${item.id} | ${item.what} | ${format(item.values)} ${item.unit} | ${baseline} | ${item.goal} | ${met ? 'yes' : 'no'} |`;
  }),
  ...(measurements.some((item) => item.notes) ? ['', ...measurements.filter((item) => item.notes).map((item) => `- ${item.id}: ${item.notes}`)] : []),
  ...(failures.length > 0 ? ['', 'Not measured:', ...failures.map((failure) => `- ${failure}`)] : []),
];
const table = lines.join('\n');
console.log(table);

const stamp = machine.date.replace(/[:.]/g, '-');
const resultsDirectory = path.join(ROOT, 'bench/results');
fs.mkdirSync(resultsDirectory, { recursive: true });
fs.writeFileSync(path.join(resultsDirectory, `${stamp}${quick ? '-quick' : ''}.md`), `${table}\n`);
fs.writeFileSync(
  path.join(resultsDirectory, `${stamp}${quick ? '-quick' : ''}.raw.json`),
  JSON.stringify({ machine, quick, measurements: measurements.map(({ goalMet: _goalMet, ...rest }) => rest), failures }, null, 2),
);
process.exitCode = failures.length > 0 ? 1 : 0;
