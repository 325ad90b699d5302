import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import type { ApiClient } from '../../tests/support/client';
import { describeCpuSplits, startCpuAccount, type CpuSplit } from './cpu';
import { resetPageCache, median, secondsSince, type Measurement } from './types';

/** A plain node:http server that only pipes each request body to a file: the floor for a PUT. */
async function startPipeServer(directory: string): Promise<{ url: string; close(): Promise<void> }> {
  let counter = 0;
  const server = http.createServer((request, response) => {
    const target = path.join(directory, `body-${counter++}`);
    pipeline(request, fs.createWriteStream(target)).then(
      () => response.writeHead(201).end(),
      () => response.writeHead(500).end(),
    );
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  return { url: `http://127.0.0.1:${port}`, close: () => new Promise((resolve) => server.close(() => resolve())) };
}

const execFileAsync = promisify(execFile);

/** Runs curl asynchronously, because the baseline server lives in this process's event loop. */
async function curlPut(url: string, file: string, token?: string): Promise<void> {
  const args = ['-sS', '--fail', '-o', '/dev/null', '-T', file, url];
  if (token) args.unshift('-H', `Authorization: Bearer ${token}`);
  await execFileAsync('curl', args);
}

/** P1b: raw PUT of one file into a package (digests, fsync, recorded) against a plain pipe-to-file server; both sent by curl. */
export async function measureRawPut(api: ApiClient, serverPid: number, file: string, runs: number): Promise<Measurement> {
  const directory = fs.mkdtempSync(path.join(os.tmpdir(), 'bench-pipe-'));
  const pipe = await startPipeServer(directory);
  const ours: number[] = [];
  const baseline: number[] = [];
  const splits: CpuSplit[] = [];
  const baselineCpu: number[] = [];
  const gibibytes = fs.statSync(file).size / 1024 ** 3;
  try {
    const pkg = await api.createPackage({ name: 'bench-raw-put' });
    for (let run = 0; run < runs; run += 1) {
      await resetPageCache(file);
      // The pipe server runs in this process, so this process's CPU is the baseline server's.
      const baselineAccount = startCpuAccount(process.pid);
      let started = process.hrtime.bigint();
      await curlPut(`${pipe.url}/upload`, file);
      baseline.push(secondsSince(started));
      baselineCpu.push(baselineAccount.stop(gibibytes).server);
      fs.rmSync(path.join(directory, `body-${run}`), { force: true });

      // Each run appends one byte so the content is new and the store cannot deduplicate it.
      fs.appendFileSync(file, 'x');
      await resetPageCache(file);
      const account = startCpuAccount(serverPid);
      started = process.hrtime.bigint();
      await curlPut(api.url(`/packages/${pkg.id}/files/run-${run}.bin`), file, api.token);
      ours.push(secondsSince(started));
      splits.push(account.stop(gibibytes));
    }
  } finally {
    await pipe.close();
    fs.rmSync(directory, { recursive: true, force: true });
  }
  const size = fs.statSync(file).size;
  return {
    id: 'P1b',
    what: `raw PUT of ${(size / 1024 ** 2).toFixed(0)} MiB into a package (curl -T)`,
    unit: 's',
    values: ours,
    baselineWhat: 'node:http server piping the body to a file',
    baselineValues: baseline,
    goal: 'baseline time / our time ≥ 0.6',
    goalMet: (value, base) => base !== undefined && base / value >= 0.6,
    notes: `${describeCpuSplits(splits, 'GiB')} The baseline server took ${median(baselineCpu).toFixed(0)} ms of CPU per GiB.`,
  };
}
