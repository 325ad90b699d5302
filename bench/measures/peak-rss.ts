import crypto from 'node:crypto';
import http from 'node:http';
import { pipeline } from 'node:stream/promises';
import type { ApiClient } from '../../tests/support/client';
import { treeRssBytes } from '../machine';
import type { Measurement } from './types';

const MiB = 1024 ** 2;

/** Sends `request` with `totalBytes` of one repeated random MiB as its body and resolves with the response. */
function sendBody(request: http.ClientRequest, totalBytes: number): Promise<http.IncomingMessage> {
  const chunk = crypto.randomBytes(MiB);
  const responded = new Promise<http.IncomingMessage>((resolve, reject) => {
    request.on('response', resolve);
    request.on('error', reject);
  });
  async function* body() {
    for (let sent = 0; sent < totalBytes; sent += MiB) yield chunk.subarray(0, Math.min(MiB, totalBytes - sent));
  }
  return pipeline(body(), request).then(() => responded);
}

async function readText(response: http.IncomingMessage): Promise<string> {
  let text = '';
  for await (const part of response) text += part;
  return text;
}

/**
 * Uploads `totalBytes` by PUT and downloads it again while sampling the server's RSS every 100 ms. Both
 * transfers use node:http, whose client keeps one chunk at a time in memory: the same transfer through fetch and
 * a web ReadableStream left the benchmark process at 2.1 GB RSS and stalled the 4 GiB download.
 */
async function peakDuringTransfer(api: ApiClient, pid: number, totalBytes: number): Promise<number> {
  let peak = treeRssBytes(pid);
  const sampler = setInterval(() => (peak = Math.max(peak, treeRssBytes(pid))), 100);
  const agent = new http.Agent({ keepAlive: false });
  const headers = { authorization: `Bearer ${api.token}` };
  try {
    const pkg = await api.createPackage({ name: 'bench-rss' });
    const put = await sendBody(
      http.request(api.url(`/packages/${pkg.id}/files/large.bin`), { method: 'PUT', agent, headers: { ...headers, 'content-length': String(totalBytes) } }),
      totalBytes,
    );
    const putText = await readText(put);
    if (put.statusCode !== 201) throw new Error(`upload failed: ${put.statusCode} ${putText}`);
    const file = JSON.parse(putText) as { id: string };

    const download = await new Promise<http.IncomingMessage>((resolve, reject) =>
      http.get(api.url(`/files/${file.id}/download`), { agent, headers }, resolve).on('error', reject),
    );
    if (download.statusCode !== 200) throw new Error(`download failed: ${download.statusCode} ${await readText(download)}`);
    let received = 0;
    for await (const part of download as AsyncIterable<Buffer>) received += part.byteLength;
    if (received !== totalBytes) throw new Error(`download returned ${received} of ${totalBytes} bytes`);
  } finally {
    clearInterval(sampler);
    agent.destroy();
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
