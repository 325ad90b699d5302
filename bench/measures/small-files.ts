import crypto from 'node:crypto';
import type { ApiClient } from '../../tests/support/client';
import { secondsSince, type Measurement } from './types';

/** P5a: many 4 KiB files by PUT from 8 concurrent clients into one package, in files per second. */
export async function measureSmallFiles(api: ApiClient, fileCount: number, runs: number): Promise<Measurement> {
  const rates: number[] = [];
  for (let run = 0; run < runs; run += 1) {
    const pkg = await api.createPackage({ name: `bench-small-files-${run}` });
    const payloads = Array.from({ length: fileCount }, () => crypto.randomBytes(4096));
    let next = 0;
    const started = process.hrtime.bigint();
    await Promise.all(
      Array.from({ length: 8 }, async () => {
        while (next < fileCount) {
          const index = next++;
          const response = await api.putFile(pkg.id, `files/${index}.bin`, payloads[index]);
          await response.arrayBuffer();
          if (response.status !== 201) throw new Error(`PUT responded with ${response.status}`);
        }
      }),
    );
    rates.push(fileCount / secondsSince(started));
  }
  return {
    id: 'P5a',
    what: `${fileCount} files of 4 KiB by PUT, 8 concurrent clients`,
    unit: 'files/s',
    values: rates,
    goal: '≥ 1,000 files/s',
    goalMet: (value) => value >= 1000,
  };
}
