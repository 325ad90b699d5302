import crypto from 'node:crypto';
import type { ApiClient } from '../../tests/support/client';
import { treeRssBytes } from '../machine';
import type { Measurement } from './types';

const MiB = 1024 ** 2;

/** Uploads `totalBytes` by PUT and downloads it again while sampling the server's RSS every 100 ms. */
async function peakDuringTransfer(api: ApiClient, pid: number, totalBytes: number): Promise<number> {
  let peak = treeRssBytes(pid);
  const sampler = setInterval(() => (peak = Math.max(peak, treeRssBytes(pid))), 100);
  try {
    const pkg = await api.createPackage({ name: 'bench-rss' });
    const chunk = crypto.randomBytes(MiB);
    let sent = 0;
    const body = new ReadableStream<Uint8Array>({
      pull(controller) {
        if (sent >= totalBytes) return controller.close();
        const size = Math.min(MiB, totalBytes - sent);
        controller.enqueue(new Uint8Array(chunk.subarray(0, size)));
        sent += size;
      },
    });
    const put = await api.putFile(pkg.id, 'large.bin', body as unknown as BodyInit);
    if (put.status !== 201) throw new Error(`upload failed: ${put.status} ${await put.text()}`);
    const file = await put.json();
    const download = await api.get(`/files/${file.id}/download`);
    let received = 0;
    for await (const part of download.body as unknown as AsyncIterable<Uint8Array>) received += part.byteLength;
    if (received !== totalBytes) throw new Error(`download returned ${received} of ${totalBytes} bytes`);
  } finally {
    clearInterval(sampler);
  }
  return peak;
}

/**
 * P3: peak server RSS during an upload and download of each size, against `idleBytes`, the RSS measured
 * right after start. Flat means the largest size's peak is at most 25% above the smallest size's.
 */
export async function measurePeakRss(api: ApiClient, pid: number, sizesGiB: number[], idleBytes: number): Promise<Measurement> {
  const idle = idleBytes;
  const peaks: number[] = [];
  for (const size of sizesGiB) peaks.push((await peakDuringTransfer(api, pid, Math.round(size * 1024 ** 3))) / MiB);
  return {
    id: 'P3',
    what: `server peak RSS during PUT + GET of ${sizesGiB.join(', ')} GiB (one value per size)`,
    unit: 'MiB',
    values: peaks,
    baselineWhat: 'idle RSS after start',
    baselineValues: [idle / MiB],
    goal: '< 300 MiB, flat across sizes',
    goalMet: () => Math.max(...peaks) < 300 && peaks[peaks.length - 1] <= peaks[0] * 1.25,
  };
}
