import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import type { ApiClient } from '../../tests/support/client';
import { describeCpuSplits, startCpuAccount, type CpuSplit } from './cpu';
import { startScriptServer } from './script-server';
import { median, secondsSince, type Measurement } from './types';

const CLIENTS = 8;

/**
 * PUTs `fileCount` random 4 KiB bodies to `pathOf(index)` on `url`, from CLIENTS keep-alive connections,
 * and returns the files per second and the CPU per file of the process `serverPid`. Every response must be 201.
 */
async function putFiles(
  url: string,
  pathOf: (index: number) => string,
  headers: Record<string, string>,
  serverPid: number,
  fileCount: number,
): Promise<{ rate: number; split: CpuSplit }> {
  const target = new URL(url);
  const payloads = Array.from({ length: fileCount }, () => crypto.randomBytes(4096));
  const agent = new http.Agent({ keepAlive: true, maxSockets: CLIENTS });
  const put = (index: number) =>
    new Promise<void>((resolve, reject) => {
      const request = http.request(
        {
          host: target.hostname,
          port: target.port,
          method: 'PUT',
          path: pathOf(index),
          agent,
          headers: { ...headers, 'content-length': String(payloads[index].length) },
        },
        (response) => {
          response.resume();
          response.on('end', () => (response.statusCode === 201 ? resolve() : reject(new Error(`PUT responded with ${response.statusCode}`))));
          response.on('error', reject);
        },
      );
      request.on('error', reject);
      request.end(payloads[index]);
    });

  let next = 0;
  const account = startCpuAccount(serverPid);
  const started = process.hrtime.bigint();
  try {
    await Promise.all(
      Array.from({ length: CLIENTS }, async () => {
        while (next < fileCount) await put(next++);
      }),
    );
  } finally {
    agent.destroy();
  }
  const rate = fileCount / secondsSince(started);
  return { rate, split: account.stop(fileCount) };
}

/**
 * P5a: many 4 KiB files by PUT from 8 concurrent clients into one package, in files per second. The
 * clients are node:http requests on 8 keep-alive connections. The tests' fetch client, which also checks
 * each response against the OpenAPI document, cost 1.3 ms of CPU per file against 0.3 ms for these, and
 * the load shares the machine's cores with the server and PostgreSQL. The same load against
 * bench/floor-server.mjs, which only writes, fsyncs and links each body as our file system backend
 * does, shows what the disk and node:http allow here.
 */
export async function measureSmallFiles(api: ApiClient, serverPid: number, fileCount: number, runs: number): Promise<Measurement> {
  const rates: number[] = [];
  const splits: CpuSplit[] = [];
  const floorRates: number[] = [];
  const floorSplits: CpuSplit[] = [];
  const floorDirectory = fs.mkdtempSync(path.join(os.tmpdir(), 'bench-floor-files-'));
  const floor = await startScriptServer('floor-server.mjs', floorDirectory);
  try {
    for (let run = 0; run < runs; run += 1) {
      const pkg = await api.createPackage({ name: `bench-small-files-${run}` });
      const ours = await putFiles(api.url('/'), (index) => `/api/v1/packages/${pkg.id}/files/files/${index}.bin`, { authorization: `Bearer ${api.token}` }, serverPid, fileCount);
      rates.push(ours.rate);
      splits.push(ours.split);
      const floorRun = await putFiles(floor.url, (index) => `/files/${run}-${index}`, {}, floor.pid, fileCount);
      floorRates.push(floorRun.rate);
      floorSplits.push(floorRun.split);
    }
  } finally {
    floor.stop();
    fs.rmSync(floorDirectory, { recursive: true, force: true });
  }
  return {
    id: 'P5a',
    what: `${fileCount} files of 4 KiB by PUT, ${CLIENTS} concurrent keep-alive clients`,
    unit: 'files/s',
    values: rates,
    goal: '≥ 1,000 files/s',
    goalMet: (value) => value >= 1000,
    notes:
      `${describeCpuSplits(splits, 'file')} ` +
      `The floor, bench/floor-server.mjs (node:http writing, fsyncing and linking each body, without authentication, database, digests or metrics), ` +
      `stored ${median(floorRates).toFixed(0)} files/s (${Math.min(...floorRates).toFixed(0)}–${Math.max(...floorRates).toFixed(0)}) ` +
      `with ${median(floorSplits.map((split) => split.server)).toFixed(2)} ms of CPU per file.`,
  };
}
