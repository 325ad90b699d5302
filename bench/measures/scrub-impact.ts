import { execFile } from 'node:child_process';
import fs from 'node:fs';
import { promisify } from 'node:util';
import type { ApiClient } from '../../tests/support/client';
import { resetPageCache, secondsSince, type Measurement } from './types';

const execFileAsync = promisify(execFile);

async function timedPut(api: ApiClient, packageId: string, relativePath: string, file: string): Promise<number> {
  await resetPageCache(file);
  const started = process.hrtime.bigint();
  await execFileAsync('curl', ['-sS', '--fail', '-o', '/dev/null', '-H', `Authorization: Bearer ${api.token}`, '-T', file, api.url(`/packages/${packageId}/files/${relativePath}`)]);
  return secondsSince(started);
}

/**
 * P8: a large PUT alone, then the same PUT while a full fixity scrub runs over what the earlier figures
 * stored, at the default rates (SCRUB_BUSY_RATE_MB_PER_S while the PUT arrives). The goal is a slowdown
 * below 20%.
 */
export async function measureScrubImpact(api: ApiClient, file: string, runs: number): Promise<Measurement> {
  const pkg = await api.createPackage({ name: 'bench-scrub-impact' });
  const alone: number[] = [];
  const withScrub: number[] = [];
  for (let run = 0; run < runs; run += 1) {
    fs.appendFileSync(file, 'y');
    alone.push(await timedPut(api, pkg.id, `alone-${run}.bin`, file));

    fs.appendFileSync(file, 'z');
    const controller = new AbortController();
    const scrub = api.post('/scrub', {}, { signal: controller.signal }).then(
      async (response) => {
        if (response.status !== 200) throw new Error(`scrub responded with ${response.status}: ${await response.text()}`);
      },
      (error: Error) => {
        if (error.name !== 'AbortError') throw error;
      },
    );
    await new Promise((resolve) => setTimeout(resolve, 200));
    withScrub.push(await timedPut(api, pkg.id, `scrubbed-${run}.bin`, file));
    controller.abort();
    await scrub;
  }
  const size = fs.statSync(file).size;
  return {
    id: 'P8',
    what: `PUT of ${(size / 1024 ** 2).toFixed(0)} MiB while a fixity scrub runs`,
    unit: 's',
    values: withScrub,
    baselineWhat: 'the same PUT with no scrub',
    baselineValues: alone,
    goal: 'slowdown below 20%',
    goalMet: (value, baselineMedian) => baselineMedian !== undefined && value / baselineMedian < 1.2,
  };
}
