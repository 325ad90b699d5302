import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import * as tus from 'tus-js-client';
import type { ApiClient } from '../../tests/support/client';
import { startScriptServer } from './script-server';
import { describeCpuSplits, startCpuAccount, type CpuSplit } from './cpu';
import { resetPageCache, median, secondsSince, type Measurement } from './types';

/** Uploads a file with tus-js-client in one PATCH and resolves when the server has acknowledged the last byte. */
function tusUpload(endpoint: string, file: string, metadata: Record<string, string>, headers: Record<string, string>): Promise<void> {
  return new Promise((resolve, reject) => {
    const upload = new tus.Upload(fs.createReadStream(file), {
      endpoint,
      metadata,
      headers,
      uploadSize: fs.statSync(file).size,
      chunkSize: Number.POSITIVE_INFINITY,
      retryDelays: [],
      storeFingerprintForResuming: false,
      onSuccess: () => resolve(),
      onError: reject,
    });
    upload.start();
  });
}

/**
 * P1: tus upload of one file into a package through our route (both digests, fsync, recorded as a file),
 * against @tus/server with FileStore on plain node:http without digests; both driven by tus-js-client.
 */
export async function measureTusIngest(api: ApiClient, serverPid: number, file: string, runs: number): Promise<Measurement> {
  const directory = fs.mkdtempSync(path.join(os.tmpdir(), 'bench-tus-baseline-'));
  const baseline = await startScriptServer('tus-baseline-server.mjs', directory);
  const ours: number[] = [];
  const base: number[] = [];
  const splits: CpuSplit[] = [];
  const baselineCpu: number[] = [];
  const gibibytes = fs.statSync(file).size / 1024 ** 3;
  try {
    const pkg = await api.createPackage({ name: 'bench-tus' });
    for (let run = 0; run < runs; run += 1) {
      await resetPageCache(file);
      const baselineAccount = startCpuAccount(baseline.pid);
      let started = process.hrtime.bigint();
      await tusUpload(`${baseline.url}/files`, file, { filename: `run-${run}.bin` }, {});
      base.push(secondsSince(started));
      baselineCpu.push(baselineAccount.stop(gibibytes).server);

      await resetPageCache(file);
      const account = startCpuAccount(serverPid);
      started = process.hrtime.bigint();
      await tusUpload(api.url('/uploads'), file, { package_id: pkg.id, relative_path: `tus/run-${run}.bin` }, { Authorization: `Bearer ${api.token}` });
      ours.push(secondsSince(started));
      splits.push(account.stop(gibibytes));
    }
  } finally {
    baseline.stop();
    fs.rmSync(directory, { recursive: true, force: true });
  }
  const size = fs.statSync(file).size;
  return {
    id: 'P1',
    what: `tus upload of ${(size / 1024 ** 2).toFixed(0)} MiB into a package (tus-js-client, one PATCH)`,
    unit: 's',
    values: ours,
    baselineWhat: '@tus/server + FileStore on node:http, no digests',
    baselineValues: base,
    goal: 'baseline time / our time ≥ 1.0',
    goalMet: (value, baselineMedian) => baselineMedian !== undefined && baselineMedian / value >= 1.0,
    notes: `${describeCpuSplits(splits, 'GiB')} The baseline server took ${median(baselineCpu).toFixed(0)} ms of CPU per GiB.`,
  };
}

/**
 * Times the final one-byte PATCH of an upload whose other bytes already arrived: the hand-off of the
 * staged file into the package (rename, file row, events) as the client sees it.
 */
async function completionSeconds(api: ApiClient, packageId: string, relativePath: string, sizeBytes: number): Promise<number> {
  const metadata = `package_id ${Buffer.from(packageId).toString('base64')},relative_path ${Buffer.from(relativePath).toString('base64')}`;
  const created = await api.request('POST', '/uploads', { headers: { 'Tus-Resumable': '1.0.0', 'Upload-Length': String(sizeBytes), 'Upload-Metadata': metadata } });
  if (created.status !== 201) throw new Error(`upload creation responded with ${created.status}`);
  const location = created.headers.get('location')!;
  const patch = (offset: number, body: ReadableStream<Uint8Array> | Uint8Array) =>
    fetch(location, {
      method: 'PATCH',
      headers: { Authorization: `Bearer ${api.token}`, 'Tus-Resumable': '1.0.0', 'Upload-Offset': String(offset), 'Content-Type': 'application/offset+octet-stream' },
      body,
      duplex: 'half',
    } as RequestInit);

  const chunk = new Uint8Array(1024 * 1024).fill(7);
  let sent = 0;
  const head = sizeBytes - 1;
  const body = new ReadableStream<Uint8Array>({
    pull(controller) {
      if (sent >= head) return controller.close();
      const size = Math.min(chunk.length, head - sent);
      controller.enqueue(chunk.subarray(0, size));
      sent += size;
    },
  });
  const first = await patch(0, body);
  if (first.status !== 204) throw new Error(`PATCH responded with ${first.status}`);

  const started = process.hrtime.bigint();
  const last = await patch(head, new Uint8Array([1]));
  const seconds = secondsSince(started);
  if (last.status !== 204) throw new Error(`final PATCH responded with ${last.status}`);
  return seconds;
}

/** P2: completion time of a large tus upload (last PATCH sent → file recorded) against that of a 1 MiB upload. */
export async function measureTusCompletion(api: ApiClient, largeBytes: number, runs: number): Promise<Measurement> {
  const pkg = await api.createPackage({ name: 'bench-tus-completion' });
  const large: number[] = [];
  const small: number[] = [];
  for (let run = 0; run < runs; run += 1) {
    small.push(await completionSeconds(api, pkg.id, `small-${run}.bin`, 1024 * 1024 + run));
    large.push(await completionSeconds(api, pkg.id, `large-${run}.bin`, largeBytes + run));
  }
  return {
    id: 'P2',
    what: `completion of a ${(largeBytes / 1024 ** 2).toFixed(0)} MiB tus upload (final PATCH → file recorded)`,
    unit: 's',
    values: large,
    baselineWhat: 'completion of a 1 MiB upload',
    baselineValues: small,
    goal: 'our time / baseline time ≤ 2',
    goalMet: (value, baselineMedian) => baselineMedian !== undefined && value / baselineMedian <= 2,
  };
}
