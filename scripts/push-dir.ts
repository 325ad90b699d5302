/**
 * Pushes a directory tree into a new package and finalizes it, for demos:
 *
 *   npm run push-dir -- DIR [--url http://127.0.0.1:3000] [--token TOKEN] [--name NAME] [--class standard]
 *
 * The token defaults to ARTIFACT_STORE_TOKEN, then to the first admin token in data/admin-token.
 */
import fs from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { pushDirectory } from './lib/push-directory';

const { positionals, values } = parseArgs({
  allowPositionals: true,
  options: {
    url: { type: 'string', default: process.env.ARTIFACT_STORE_URL ?? 'http://127.0.0.1:3000' },
    token: { type: 'string', default: process.env.ARTIFACT_STORE_TOKEN },
    name: { type: 'string' },
    producer: { type: 'string', default: 'push-dir' },
    subject: { type: 'string' },
    class: { type: 'string', default: 'standard' },
  },
});

const directory = positionals[0];
if (!directory || !fs.statSync(directory, { throwIfNoEntry: false })?.isDirectory()) {
  console.error('usage: npm run push-dir -- DIR [--url URL] [--token TOKEN] [--name NAME] [--class CLASS]');
  process.exit(2);
}
const token = values.token ?? fs.readFileSync(path.resolve(process.env.DATA_DIR ?? 'data', 'admin-token'), 'utf8').trim();
const headers = { authorization: `Bearer ${token}`, 'content-type': 'application/json' };

const created = await fetch(`${values.url}/api/v1/packages`, {
  method: 'POST',
  headers,
  body: JSON.stringify({
    name: values.name ?? path.basename(path.resolve(directory)),
    producer: values.producer,
    subject: values.subject ?? path.resolve(directory),
    retention_class: values.class,
  }),
});
const pkg = await created.json();
if (created.status !== 201) {
  console.error(`creating the package failed (${created.status}): ${pkg.detail ?? JSON.stringify(pkg)}`);
  process.exit(1);
}
console.log(`package ${pkg.id}`);

const started = Date.now();
const pushed = await pushDirectory({ baseUrl: values.url!, token, packageId: pkg.id, directory });
const bytes = pushed.reduce((total, file) => total + file.sizeBytes, 0);
console.log(`uploaded ${pushed.length} files, ${bytes} bytes in ${((Date.now() - started) / 1000).toFixed(1)} s`);

const finalized = await fetch(`${values.url}/api/v1/packages/${pkg.id}/finalize`, { method: 'POST', headers });
const record = await finalized.json();
if (finalized.status !== 200) {
  console.error(`finalize failed (${finalized.status}): ${record.detail}`);
  process.exit(1);
}
console.log(`manifest ${record.manifest_digest}`);
