import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { DomainError } from '../../server/errors';
import { parseManifest, type ManifestFileEntry } from '../../server/integrity/verify-package';
import type { FileRecord } from '../../server/registry/files';
import type { PackageRecord } from '../../server/registry/packages';
import { normalizeRelativePath } from '../../server/registry/relative-path';
import { ApiClient } from '../api-client';
import { downloadFile, type DownloadOutcome, type ExpectedFile } from '../download-file';
import { CommandError, VerificationError } from '../errors';
import { COMMON_HELP, connectionFrom, parseCommandArgs, positiveInteger, requirePositionals } from '../options';
import { createTransferProgress } from '../progress';
import { MANIFEST_CBOR_NAME, MANIFEST_JSON_NAME } from '../verify-directory';
import { acquireProcessLock } from '../process-lock';

/** Directory inside DIR where downloads collect until they are verified. */
export const PARTIAL_DIRECTORY_NAME = '.artifact-store-partial';
/** Lock file inside the partial directory, holding the id of the process that is pulling into DIR. */
const PULL_LOCK_NAME = 'pull.lock';

export const PULL_HELP = `usage: artifact-store pull PACKAGE_ID DIR [options]

Downloads every file of a finalized package into DIR (created if missing), several at once, verifying
size, BLAKE3 and SHA-256 of each file as it streams. Bytes collect in DIR/${PARTIAL_DIRECTORY_NAME}/ and a
file gets its final name only after it passed verification. Running the command again continues: a
partial file is re-hashed and resumed with a Range request, and finished files are checked and kept.
Only one pull runs in DIR at a time: a second one exits 1 and names the process id of the first.
The manifest is written beside the files as ${MANIFEST_CBOR_NAME} and ${MANIFEST_JSON_NAME}, after its
BLAKE3 was checked against the package's manifest_digest. Exit status 3 when any bytes fail verification.

  --parallel N         downloads at once (default 4, at most 32)
${COMMON_HELP}`;

async function fetchBytes(client: ApiClient, apiPath: string, accept: string): Promise<Buffer> {
  return Buffer.from(await (await client.send('GET', apiPath, { headers: { Accept: accept } })).arrayBuffer());
}

/** Writes a small file atomically so an interrupted pull never leaves a torn manifest. */
async function writeFileAtomically(file: string, bytes: Uint8Array): Promise<void> {
  const temporary = `${file}.${process.pid}.tmp`;
  await fsp.writeFile(temporary, bytes);
  await fsp.rename(temporary, file);
}

/** Checks a server-supplied path before it is joined to DIR, so no manifest entry can escape DIR. */
function safeRelativePath(entry: ManifestFileEntry): string {
  try {
    const normalized = normalizeRelativePath(entry.relative_path);
    if (normalized !== entry.relative_path) throw new Error('the path is not in NFC form');
    return normalized;
  } catch (error) {
    const reason = error instanceof DomainError || error instanceof Error ? error.message : String(error);
    throw new VerificationError(`The manifest lists an invalid path ${JSON.stringify(entry.relative_path)}: ${reason}`);
  }
}

/** Downloads every expected file with `parallel` workers and counts the outcomes. */
async function downloadAll(options: { client: ApiClient; directory: string; partialDirectory: string; expected: ExpectedFile[]; parallel: number; interactive: boolean }): Promise<Map<DownloadOutcome, number>> {
  const { client, directory, partialDirectory, expected } = options;
  const progress = createTransferProgress({
    verb: 'download',
    totalBytes: expected.reduce((sum, file) => sum + file.sizeBytes, 0),
    totalFiles: expected.length,
    alreadyDoneBytes: 0,
    interactive: options.interactive,
  });
  const outcomes = new Map<DownloadOutcome, number>();
  try {
    let next = 0;
    const worker = async () => {
      while (next < expected.length) {
        const file = expected[next++];
        const outcome = await downloadFile({
          client,
          file,
          target: path.join(directory, ...file.relativePath.split('/')),
          partial: path.join(partialDirectory, file.fileId),
          onStart: (resumedBytes) => progress.startFile(file.relativePath, file.sizeBytes, resumedBytes),
          onProgress: (doneBytes) => progress.updateFile(file.relativePath, doneBytes),
        });
        outcomes.set(outcome, (outcomes.get(outcome) ?? 0) + 1);
        progress.finishFile(file.relativePath, outcome === 'present' ? 'already present and verified' : `${outcome} and verified`);
      }
    };
    await Promise.all(Array.from({ length: Math.min(options.parallel, expected.length) }, worker));
  } finally {
    progress.stop();
  }
  return outcomes;
}

export async function runPull(args: string[]): Promise<number> {
  const { values, positionals } = parseCommandArgs(args, { parallel: { type: 'string' } });
  if (values.help) {
    console.log(PULL_HELP);
    return 0;
  }
  const [packageId, directoryArgument] = requirePositionals(positionals, ['PACKAGE_ID', 'DIR']);
  const parallel = positiveInteger(values.parallel, 'parallel', 4, 32);
  const client = new ApiClient(connectionFrom(values));
  const directory = path.resolve(directoryArgument);
  const log = (line: string) => process.stderr.write(`${line}\n`);
  const existing = fs.statSync(directory, { throwIfNoEntry: false });
  if (existing && !existing.isDirectory()) throw new CommandError(`${directory} exists and is not a directory; pull into a new or existing directory.`);

  const pkg = await client.getJson<PackageRecord>(`/packages/${encodeURIComponent(packageId)}`);
  if (pkg.status !== 'finalized' || !pkg.manifest_digest) {
    throw new CommandError(`Package ${pkg.id} is ${pkg.status}; only a finalized package has a manifest to pull against.`);
  }

  // The CBOR bytes are what manifest_digest names; the JSON form must describe the same manifest.
  const manifestCbor = await fetchBytes(client, `/packages/${pkg.id}/manifest`, 'application/cbor');
  const manifestJson = await fetchBytes(client, `/packages/${pkg.id}/manifest.json`, 'application/json');
  const fromCbor = parseManifest(manifestCbor);
  if (fromCbor.digest !== pkg.manifest_digest) {
    throw new VerificationError(`The manifest the server sent has digest ${fromCbor.digest}, but the package's manifest_digest is ${pkg.manifest_digest}.`);
  }
  if (parseManifest(manifestJson).digest !== fromCbor.digest) {
    throw new VerificationError(`The JSON manifest of package ${pkg.id} does not describe the same manifest as its CBOR form.`);
  }

  const records = await client.listAll<FileRecord>(`/packages/${pkg.id}/files`, 'files', 1000);
  const recordByPath = new Map(records.map((record) => [record.relative_path, record]));
  const expected: ExpectedFile[] = fromCbor.files.map((entry) => {
    const relativePath = safeRelativePath(entry);
    if (relativePath === MANIFEST_CBOR_NAME || relativePath === MANIFEST_JSON_NAME || relativePath.split('/')[0] === PARTIAL_DIRECTORY_NAME) {
      // NOTE: pull cannot fetch such a package, because its own files would overwrite package files.
      throw new CommandError(`Package ${pkg.id} contains ${relativePath}, the path where pull writes its manifest or partial downloads. Download its files one by one with GET /api/v1/files/{id}/download instead.`);
    }
    const record = recordByPath.get(relativePath);
    if (!record) throw new VerificationError(`The manifest lists ${relativePath}, but the package's file list does not.`);
    return {
      fileId: record.id,
      relativePath,
      sizeBytes: entry.size_bytes,
      blake3Hex: entry.blake3_hex,
      sha256Hex: entry.sha256_hex,
      contentAddress: record.content_address,
    };
  });
  if (records.length !== expected.length) throw new VerificationError(`The package lists ${records.length} files, but its manifest lists ${expected.length}.`);

  await fsp.mkdir(directory, { recursive: true });
  const partialDirectory = path.join(directory, PARTIAL_DIRECTORY_NAME);
  // Two pulls into one directory would write the same partial files; the second one stops here.
  const lock = acquireProcessLock(path.join(partialDirectory, PULL_LOCK_NAME), `A pull into ${directory}`);
  let outcomes: Map<DownloadOutcome, number>;
  try {
    outcomes = await downloadAll({ client, directory, partialDirectory, expected, parallel, interactive: process.stdout.isTTY === true && values.json !== true });
    await writeFileAtomically(path.join(directory, MANIFEST_CBOR_NAME), manifestCbor);
    await writeFileAtomically(path.join(directory, MANIFEST_JSON_NAME), manifestJson);
  } finally {
    lock.release();
  }
  if (fs.existsSync(partialDirectory)) await fsp.rmdir(partialDirectory).catch(() => log(`left ${partialDirectory} in place: it is not empty`));

  const summary = {
    package_id: pkg.id,
    manifest_digest: pkg.manifest_digest,
    directory,
    files: expected.length,
    downloaded: outcomes.get('downloaded') ?? 0,
    resumed: outcomes.get('resumed') ?? 0,
    already_present: outcomes.get('present') ?? 0,
  };
  if (values.json) console.log(JSON.stringify(summary));
  else log(`pulled ${summary.files} files into ${directory} (${summary.downloaded} downloaded, ${summary.resumed} resumed, ${summary.already_present} already present); manifest ${pkg.manifest_digest}`);
  return 0;
}
