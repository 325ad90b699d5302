import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import { digestFile } from '../../server/digest';
import { secondsSince, type Measurement } from './types';

/**
 * P7: BLAKE3 and SHA-256 of one cached file by our digest module, against `b3sum --num-threads 1` and
 * `openssl dgst -sha256` run one after the other on the same file (their times added).
 */
export async function measureDigest(file: string, runs: number): Promise<Measurement> {
  execFileSync('cat', [file], { stdio: ['ignore', 'ignore', 'ignore'] });
  const ours: number[] = [];
  const baseline: number[] = [];
  const expected = execFileSync('b3sum', ['--no-names', '--num-threads', '1', file], { encoding: 'utf8' }).trim();
  for (let run = 0; run < runs; run += 1) {
    let started = process.hrtime.bigint();
    const result = await digestFile(file);
    ours.push(secondsSince(started));
    if (result.blake3Hex !== expected) throw new Error('digest module and b3sum disagree');

    started = process.hrtime.bigint();
    execFileSync('b3sum', ['--num-threads', '1', file], { stdio: 'ignore' });
    execFileSync('openssl', ['dgst', '-sha256', file], { stdio: 'ignore' });
    baseline.push(secondsSince(started));
  }
  const size = fs.statSync(file).size;
  return {
    id: 'P7',
    what: `BLAKE3 + SHA-256 of a cached ${(size / 1024 ** 2).toFixed(0)} MiB file (digest module)`,
    unit: 's',
    values: ours,
    baselineWhat: 'b3sum --num-threads 1, then openssl dgst -sha256',
    baselineValues: baseline,
    goal: 'baseline time / our time ≥ 1.0',
    goalMet: (value, base) => base !== undefined && base / value >= 1.0,
  };
}
