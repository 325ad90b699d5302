/**
 * Measures the server's peak resident memory while it receives one large file by PUT and serves it back.
 *
 *   npx tsx bench/peak-rss.ts [--gib 2] [--quick]
 *
 * The server is a production build (`next start`) on embedded PGlite or, with TEST_DATABASE_URL, on a
 * fresh PostgreSQL database. The baseline is the same server's RSS when idle after start. --quick sends
 * 256 MiB instead. The goal is a peak below 300 MiB that does not grow with the file size.
 */
import crypto from 'node:crypto';
import { parseArgs } from 'node:util';
import setup from '../tests/support/global-setup';
import { ApiClient } from '../tests/support/client';
import { createTestEnvironment, startServer } from '../tests/support/server';
import { machineDetails, treeRssBytes } from './machine';

const { values } = parseArgs({ options: { gib: { type: 'string', default: '2' }, quick: { type: 'boolean', default: false } } });
const totalBytes = values.quick ? 256 * 1024 ** 2 : Math.round(Number(values.gib) * 1024 ** 3);
const MiB = 1024 ** 2;

setup();
const environment = await createTestEnvironment({ LOG_LEVEL: 'warn' });
const server = await startServer(environment);
const api = new ApiClient(server.url, environment.adminToken);
const pid = server.process.pid!;

await new Promise((resolve) => setTimeout(resolve, 1000));
const idle = treeRssBytes(pid);
let peak = idle;
const sampler = setInterval(() => (peak = Math.max(peak, treeRssBytes(pid))), 100);

try {
  const pkg = await api.createPackage({ name: 'rss-bench' });
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
  const uploadStarted = Date.now();
  const put = await api.putFile(pkg.id, 'large.bin', body as unknown as BodyInit);
  if (put.status !== 201) throw new Error(`upload failed: ${put.status} ${await put.text()}`);
  const file = await put.json();
  const uploadSeconds = (Date.now() - uploadStarted) / 1000;
  const peakAfterUpload = peak;

  const downloadStarted = Date.now();
  const download = await api.get(`/files/${file.id}/download`);
  let received = 0;
  for await (const part of download.body as unknown as AsyncIterable<Uint8Array>) received += part.byteLength;
  if (received !== totalBytes) throw new Error(`download returned ${received} of ${totalBytes} bytes`);
  const downloadSeconds = (Date.now() - downloadStarted) / 1000;

  clearInterval(sampler);
  const result = {
    machine: machineDetails(),
    file_bytes: totalBytes,
    idle_rss_mib: +(idle / MiB).toFixed(1),
    peak_rss_upload_mib: +(peakAfterUpload / MiB).toFixed(1),
    peak_rss_mib: +(peak / MiB).toFixed(1),
    upload_mb_per_s: +(totalBytes / 1e6 / uploadSeconds).toFixed(1),
    download_mb_per_s: +(totalBytes / 1e6 / downloadSeconds).toFixed(1),
    goal: 'peak below 300 MiB',
    goal_met: peak < 300 * MiB,
  };
  console.log(JSON.stringify(result, null, 2));
} finally {
  clearInterval(sampler);
  await server.stop();
  await environment.cleanup();
}
