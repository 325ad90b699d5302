import { execFile, spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import type { ApiClient } from '../../tests/support/client';
import { describeCpuSplits, startCpuAccount, type CpuSplit } from './cpu';
import { startScriptServer } from './script-server';
import { median, secondsSince, type Measurement } from './types';

const execFileAsync = promisify(execFile);
const NGINX = '/usr/sbin/nginx';
const RANGE_BYTES = 4096;
const CONCURRENCY = 8;

async function freePort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as net.AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/** Starts nginx in the foreground with its own prefix directory, serving `root` on a free loopback port. */
async function startNginx(root: string): Promise<{ url: string; stop(): Promise<void> }> {
  if (!fs.existsSync(NGINX)) throw new Error(`${NGINX} not found: install Debian's nginx-light (apt-get install nginx-light)`);
  const prefix = fs.mkdtempSync(path.join(os.tmpdir(), 'bench-nginx-'));
  const port = await freePort();
  // As root, nginx would otherwise run its workers as user nobody, which cannot read the mkdtemp directories.
  const user = process.getuid?.() === 0 ? 'user root;' : '';
  const config = `
${user}
daemon off;
worker_processes 1;
pid ${prefix}/nginx.pid;
error_log ${prefix}/error.log warn;
events { worker_connections 256; }
http {
  access_log off;
  sendfile on;
  tcp_nopush on;
  keepalive_requests 100000;
  client_body_temp_path ${prefix}/body;
  proxy_temp_path ${prefix}/proxy;
  fastcgi_temp_path ${prefix}/fastcgi;
  uwsgi_temp_path ${prefix}/uwsgi;
  scgi_temp_path ${prefix}/scgi;
  server {
    listen 127.0.0.1:${port};
    root ${root};
  }
}
`;
  fs.writeFileSync(path.join(prefix, 'nginx.conf'), config);
  const child: ChildProcess = spawn(NGINX, ['-p', prefix, '-c', path.join(prefix, 'nginx.conf')], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr?.on('data', (chunk) => (stderr += chunk));

  const url = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 10_000;
  while (true) {
    if (child.exitCode !== null) throw new Error(`nginx exited with ${child.exitCode}: ${stderr.trim()}`);
    try {
      await fetch(`${url}/`);
      break;
    } catch {
      if (Date.now() > deadline) throw new Error(`nginx did not respond on ${url} within 10 s: ${stderr.trim()}`);
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }
  return {
    url,
    stop: async () => {
      child.kill('SIGQUIT');
      await new Promise((resolve) => child.once('exit', resolve));
      fs.rmSync(prefix, { recursive: true, force: true });
    },
  };
}

/** Downloads a whole URL with curl to /dev/null and checks the byte count. */
async function curlGet(url: string, expectedBytes: number, token?: string): Promise<number> {
  const args = ['-sS', '--fail', '-o', '/dev/null', '-w', '%{size_download}', url];
  if (token) args.unshift('-H', `Authorization: Bearer ${token}`);
  const started = process.hrtime.bigint();
  const { stdout } = await execFileAsync('curl', args);
  const seconds = secondsSince(started);
  if (Number(stdout) !== expectedBytes) throw new Error(`${url} sent ${stdout} bytes, expected ${expectedBytes}`);
  return seconds;
}

/**
 * Sends `count` GETs of random 4 KiB ranges, `CONCURRENCY` at a time over keep-alive connections, and
 * returns the seconds taken. Every response must be 206 with exactly 4 KiB.
 */
async function randomRanges(url: string, fileBytes: number, count: number, token?: string): Promise<number> {
  const agent = new http.Agent({ keepAlive: true, maxSockets: CONCURRENCY });
  const target = new URL(url);
  let next = 0;
  const one = (): Promise<void> =>
    new Promise((resolve, reject) => {
      const start = Math.floor(Math.random() * (fileBytes - RANGE_BYTES));
      const headers: Record<string, string> = { range: `bytes=${start}-${start + RANGE_BYTES - 1}` };
      if (token) headers.authorization = `Bearer ${token}`;
      const request = http.get({ host: target.hostname, port: target.port, path: target.pathname, agent, headers }, (response) => {
        let received = 0;
        response.on('data', (chunk: Buffer) => (received += chunk.length));
        response.on('end', () => {
          if (response.statusCode !== 206 || received !== RANGE_BYTES) {
            reject(new Error(`${url} responded ${response.statusCode} with ${received} bytes for a 4 KiB range`));
          } else {
            resolve();
          }
        });
        response.on('error', reject);
      });
      request.on('error', reject);
    });
  const worker = async () => {
    while (next < count) {
      next += 1;
      await one();
    }
  };

  const started = process.hrtime.bigint();
  try {
    await Promise.all(Array.from({ length: CONCURRENCY }, worker));
  } finally {
    agent.destroy();
  }
  return secondsSince(started);
}

/**
 * P4: downloads of one file by our server (GET of the whole file, then random 4 KiB ranges) against
 * nginx serving the same bytes from a plain file on the same disk.
 */
export async function measureDownloads(api: ApiClient, serverPid: number, file: string, rangeCount: number, runs: number): Promise<Measurement[]> {
  const size = fs.statSync(file).size;
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'bench-nginx-root-'));
  fs.copyFileSync(file, path.join(root, 'file.bin'));
  const nginx = await startNginx(root);
  const floor = await startScriptServer('floor-server.mjs', root);

  const pkg = await api.createPackage({ name: 'bench-downloads' });
  const put = await api.putFile(pkg.id, 'file.bin', fs.createReadStream(file) as unknown as BodyInit);
  if (put.status !== 201) throw new Error(`PUT responded ${put.status}: ${await put.text()}`);
  const { id: fileId } = (await put.json()) as { id: string };
  const ourUrl = api.url(`/files/${fileId}/download`);
  const nginxUrl = `${nginx.url}/file.bin`;

  const whole = { ours: [] as number[], baseline: [] as number[] };
  const ranges = { ours: [] as number[], baseline: [] as number[] };
  const rangeSplits: CpuSplit[] = [];
  const floorRanges: number[] = [];
  const floorSplits: CpuSplit[] = [];
  try {
    for (let run = 0; run < runs; run += 1) {
      whole.baseline.push(await curlGet(nginxUrl, size));
      whole.ours.push(await curlGet(ourUrl, size, api.token));
      ranges.baseline.push(await randomRanges(nginxUrl, size, rangeCount));
      const account = startCpuAccount(serverPid);
      ranges.ours.push(await randomRanges(ourUrl, size, rangeCount, api.token));
      rangeSplits.push(account.stop(rangeCount));
      const floorAccount = startCpuAccount(floor.pid);
      floorRanges.push(await randomRanges(`${floor.url}/ranges/file.bin`, size, rangeCount));
      floorSplits.push(floorAccount.stop(rangeCount));
    }
  } finally {
    floor.stop();
    await nginx.stop();
    fs.rmSync(root, { recursive: true, force: true });
  }

  const ratioGoal = (value: number, base: number | undefined) => base !== undefined && base / value >= 0.5;
  return [
    {
      id: 'P4 whole',
      what: `GET of a whole ${(size / 1024 ** 2).toFixed(0)} MiB file (curl), digest checked while streaming`,
      unit: 's',
      values: whole.ours,
      baselineWhat: 'nginx 1.22, sendfile, same file on the same disk',
      baselineValues: whole.baseline,
      goal: 'baseline time / our time ≥ 0.5',
      goalMet: ratioGoal,
    },
    {
      id: 'P4 ranges',
      what: `${rangeCount.toLocaleString('en')} random 4 KiB ranges, ${CONCURRENCY} keep-alive clients`,
      unit: 's',
      values: ranges.ours,
      baselineWhat: 'nginx, same requests',
      baselineValues: ranges.baseline,
      goal: 'baseline time / our time ≥ 0.5',
      goalMet: ratioGoal,
      notes:
        `${describeCpuSplits(rangeSplits, 'range request')} ` +
        `The floor for Node.js here, bench/floor-server.mjs (node:http and one read(2) per range, without authentication, database or metrics), ` +
        `took ${median(floorRanges).toFixed(2)} s (${Math.min(...floorRanges).toFixed(2)}–${Math.max(...floorRanges).toFixed(2)}) for the same requests, ` +
        `a ratio of ${(median(ranges.baseline) / median(floorRanges)).toFixed(2)} to nginx, with ${median(floorSplits.map((split) => split.server)).toFixed(2)} ms of CPU per range.`,
    },
  ];
}
