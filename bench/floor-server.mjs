// The floor for small requests: a plain node:http server without authentication, database, digests,
// metrics or logging, doing only the file system work that our server does for the same request.
// Started by the P4 and P5a measures in its own process; prints its port on stdout.
//
//   GET /ranges/NAME with `Range: bytes=A-B`: one read(2) of the range from a file opened once, 206.
//   PUT /files/NAME: the body into a new temporary file, fsync, close, link(2) into a directory of 256,
//   fsync of that directory, unlink of the temporary file, 201: the steps of our file system backend.
import crypto from 'node:crypto';
import fs from 'node:fs/promises';
import http from 'node:http';
import path from 'node:path';

const directory = process.argv[2];
if (!directory) {
  console.error('usage: node bench/floor-server.mjs DIRECTORY');
  process.exit(2);
}
const temporaryDirectory = path.join(directory, 'tmp');
await fs.mkdir(temporaryDirectory, { recursive: true });
for (let index = 0; index < 256; index += 1) await fs.mkdir(path.join(directory, index.toString(16).padStart(2, '0')), { recursive: true });

const openFiles = new Map();
const RANGE_PATTERN = /^bytes=(\d+)-(\d+)$/;

async function serveRange(request, response, name) {
  const match = RANGE_PATTERN.exec(request.headers.range ?? '');
  if (!match) return response.writeHead(416).end();
  if (!openFiles.has(name)) openFiles.set(name, fs.open(path.join(directory, path.basename(name)), 'r'));
  const handle = await openFiles.get(name);
  const start = Number(match[1]);
  const length = Number(match[2]) - start + 1;
  const { bytesRead, buffer } = await handle.read(Buffer.allocUnsafe(length), 0, length, start);
  response.writeHead(206, { 'Content-Type': 'application/octet-stream', 'Content-Length': bytesRead, 'Content-Range': `bytes ${start}-${start + bytesRead - 1}/*` });
  response.end(buffer.subarray(0, bytesRead));
}

async function storeFile(request, response) {
  const temporaryPath = path.join(temporaryDirectory, crypto.randomUUID());
  const handle = await fs.open(temporaryPath, 'wx');
  for await (const chunk of request) await handle.write(chunk);
  await handle.sync();
  await handle.close();
  const objectKey = crypto.randomBytes(16).toString('hex');
  const objectDirectory = path.join(directory, objectKey.slice(0, 2));
  await fs.link(temporaryPath, path.join(objectDirectory, objectKey));
  const directoryHandle = await fs.open(objectDirectory, 'r');
  await directoryHandle.sync();
  await directoryHandle.close();
  await fs.unlink(temporaryPath);
  response.writeHead(201, { 'Content-Length': 0 }).end();
}

const server = http.createServer((request, response) => {
  const [, kind, name] = (request.url ?? '').split('/');
  const served =
    request.method === 'GET' && kind === 'ranges' ? serveRange(request, response, name) : request.method === 'PUT' && kind === 'files' ? storeFile(request, response) : null;
  if (served === null) return response.writeHead(404).end();
  served.catch((error) => {
    console.error(error);
    response.destroy();
  });
});
server.keepAliveTimeout = 60_000;
server.listen(0, '127.0.0.1', () => console.log(String(server.address().port)));
