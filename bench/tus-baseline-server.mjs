// The baseline for tus ingest: @tus/server with FileStore on plain node:http, without digests, locks
// or database. Started by bench/measures/tus.ts in its own process; prints its port on stdout.
import http from 'node:http';
import { Server } from '@tus/server';
import { FileStore } from '@tus/file-store';

const directory = process.argv[2];
if (!directory) {
  console.error('usage: node bench/tus-baseline-server.mjs DIRECTORY');
  process.exit(2);
}
const tus = new Server({ path: '/files', datastore: new FileStore({ directory }) });
const server = http.createServer((request, response) => tus.handle(request, response));
server.listen(0, '127.0.0.1', () => console.log(String(server.address().port)));
