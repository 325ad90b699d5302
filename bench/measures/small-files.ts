import crypto from 'node:crypto';
import http from 'node:http';
import type { ApiClient } from '../../tests/support/client';
import { describeCpuSplits, startCpuAccount, type CpuSplit } from './cpu';
import { secondsSince, type Measurement } from './types';

const CLIENTS = 8;

/**
 * P5a: many 4 KiB files by PUT from 8 concurrent clients into one package, in files per second. The
 * clients are node:http requests on 8 keep-alive connections. The tests' fetch client, which also checks
 * each response against the OpenAPI document, cost 1.3 ms of CPU per file against 0.3 ms for these, and
 * the load shares the machine's cores with the server and PostgreSQL.
 */
export async function measureSmallFiles(api: ApiClient, serverPid: number, fileCount: number, runs: number): Promise<Measurement> {
  const rates: number[] = [];
  const splits: CpuSplit[] = [];
  const target = new URL(api.url('/'));
  for (let run = 0; run < runs; run += 1) {
    const pkg = await api.createPackage({ name: `bench-small-files-${run}` });
    const payloads = Array.from({ length: fileCount }, () => crypto.randomBytes(4096));
    const agent = new http.Agent({ keepAlive: true, maxSockets: CLIENTS });
    const put = (index: number) =>
      new Promise<void>((resolve, reject) => {
        const request = http.request(
          {
            host: target.hostname,
            port: target.port,
            method: 'PUT',
            path: `/api/v1/packages/${pkg.id}/files/files/${index}.bin`,
            agent,
            headers: { authorization: `Bearer ${api.token}`, 'content-length': String(payloads[index].length) },
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
    rates.push(fileCount / secondsSince(started));
    splits.push(account.stop(fileCount));
  }
  return {
    id: 'P5a',
    what: `${fileCount} files of 4 KiB by PUT, ${CLIENTS} concurrent keep-alive clients`,
    unit: 'files/s',
    values: rates,
    goal: '≥ 1,000 files/s',
    goalMet: (value) => value >= 1000,
    notes: describeCpuSplits(splits, 'file'),
  };
}
