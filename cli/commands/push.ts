import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { digestFile, type DigestResult } from '../../server/digest';
import type { FileRecord } from '../../server/registry/files';
import type { PackageRecord } from '../../server/registry/packages';
import { ApiClient } from '../api-client';
import { ApiError, CommandError, UsageError, VerificationError } from '../errors';
import { listLocalFiles, type LocalFile } from '../local-files';
import { COMMON_HELP, connectionFrom, parseCommandArgs, positiveInteger, requireOption, requirePositionals } from '../options';
import { createTransferProgress, formatBytes } from '../progress';
import { acquireProcessLock } from '../process-lock';
import { readPushState, removePushState, stateFilePath, writePushState, type PushState } from '../push-state';
import { terminateUpload, uploadFileWithTus } from '../tus-upload';

export const PUSH_HELP = `usage: artifact-store push DIR --name NAME --producer PRODUCER --subject SUBJECT --class CLASS [options]

Uploads every regular file below DIR into a new open package over tus, several at once, and prints the
package id (and with --finalize the manifest digest) on stdout.

Running the same command again after an interruption continues the same package: files already on the
server are checked against the local bytes and skipped, and partial uploads resume at the server's
offset. The state lives in $ARTIFACT_STORE_STATE_DIR (default ~/.local/state/artifact-store) and is
removed once the package is finalized. Only one run of the same push goes on at a time: a second one
exits 1 and names the process id of the first.

Symbolic links, special files and names that are not valid package paths (for example with a
backslash or a control character) stop the push before any byte is sent, with one line per entry.

  --name NAME          package name
  --producer NAME      who produced the files, such as a pipeline
  --subject TEXT       what the files are about, such as app@1.0.0
  --class CLASS        retention class, such as ephemeral, standard or permanent
  --metadata FILE      JSON object to store as the package metadata
  --schema SLUG        registered metadata schema the metadata must satisfy
  --finalize           freeze the package after the upload and print its manifest digest
  --parallel N         uploads at once (default 4, at most 32)
${COMMON_HELP}`;

/** The fields of a file record that identify its content. */
type FileDigests = Pick<FileRecord, 'relative_path' | 'size_bytes' | 'digest_primary_hex' | 'digest_sha256_hex'>;

function readMetadata(file: string | undefined): Record<string, unknown> {
  if (file === undefined) return {};
  let parsed: unknown;
  try {
    parsed = JSON.parse(fs.readFileSync(file, 'utf8'));
  } catch (error) {
    throw new UsageError(`Cannot read --metadata ${file}: ${(error as Error).message}`);
  }
  if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) throw new UsageError(`--metadata ${file} must contain a JSON object.`);
  return parsed as Record<string, unknown>;
}

/** Raises VerificationError when the server's record of a file differs from the local digests. */
function assertSameContent(file: LocalFile, local: DigestResult, remote: FileDigests): void {
  const differences: string[] = [];
  if (remote.size_bytes !== local.sizeBytes) differences.push(`size ${remote.size_bytes} on the server, ${local.sizeBytes} here`);
  if (remote.digest_sha256_hex !== local.sha256Hex) differences.push('SHA-256');
  if (remote.digest_primary_hex !== local.blake3Hex) differences.push('BLAKE3');
  if (differences.length > 0) {
    throw new VerificationError(
      `The package already contains ${file.relativePath} with different content (${differences.join(', ')} differ); the local file changed since it was uploaded, and package files cannot be replaced.`,
    );
  }
}

/** Finds the package of an earlier run of the same push, or creates one and records it in the state file. */
async function openPackage(client: ApiClient, stateFile: string, body: Record<string, unknown>, log: (line: string) => void): Promise<{ pkg: PackageRecord; state: PushState; created: boolean }> {
  const saved = readPushState(stateFile);
  if (saved && 'package_id' in saved) {
    try {
      const pkg = await client.getJson<PackageRecord>(`/packages/${encodeURIComponent(saved.package_id)}`);
      if (pkg.status === 'deleted') {
        removePushState(stateFile);
        throw new CommandError(`Package ${pkg.id} from an earlier run of this push was deleted; run the command again to push into a new package.`);
      }
      log(`continuing package ${pkg.id} (${pkg.status}) from ${stateFile}`);
      return { pkg, state: saved, created: false };
    } catch (error) {
      if (!(error instanceof ApiError && error.status === 404)) throw error;
      log(`package ${saved.package_id} from ${stateFile} is unknown to this server; creating a new package`);
    }
  }
  // The key is saved before the request, so a run killed before it saves the response repeats the
  // request with the same key and gets the package that the first request created.
  const idempotencyKey = saved && 'idempotency_key' in saved ? saved.idempotency_key : crypto.randomUUID();
  if (saved === undefined || 'package_id' in saved) writePushState(stateFile, { version: 2, idempotency_key: idempotencyKey });
  let pkg: PackageRecord;
  try {
    pkg = await createPackage(client, body, idempotencyKey);
  } catch (error) {
    // A rejected body created no package, so its pending state is removed, as a run that created
    // nothing leaves none. After a 422 the next run starts with a new key instead of repeating the 422.
    if (error instanceof ApiError && (error.status === 400 || error.status === 422)) removePushState(stateFile);
    throw error;
  }
  const state: PushState = { version: 2, package_id: pkg.id, uploads: {} };
  writePushState(stateFile, state);
  log(`created package ${pkg.id}`);
  return { pkg, state, created: true };
}

/** Maximum attempts of a create request that gets 409 while an earlier run's request with the same key is still running. */
const CREATE_ATTEMPTS = 5;

/** Sends the create request, and again after a second while the server reports the key's first request as running. */
async function createPackage(client: ApiClient, body: Record<string, unknown>, idempotencyKey: string): Promise<PackageRecord> {
  for (let attempt = 1; ; attempt += 1) {
    try {
      return await client.postJson<PackageRecord>('/packages', body, { 'Idempotency-Key': `"${idempotencyKey}"` });
    } catch (error) {
      if (!(error instanceof ApiError && error.status === 409) || attempt === CREATE_ATTEMPTS) throw error;
      await sleep(1000);
    }
  }
}

/**
 * Raises CommandError listing every file larger than the server's Tus-Max-Size (the tus OPTIONS
 * response), so that no package is created for a push the server would reject with 413. A server
 * that sends no such header, or an OPTIONS request that fails, skips the check.
 */
async function assertWithinServerLimit(client: ApiClient, files: LocalFile[]): Promise<void> {
  const response = await fetch(client.url('/uploads'), { method: 'OPTIONS', headers: { 'Tus-Resumable': '1.0.0' } }).catch(() => undefined);
  await response?.body?.cancel();
  const maxSize = Number(response?.headers.get('tus-max-size') ?? NaN);
  if (!Number.isSafeInteger(maxSize) || maxSize <= 0) return;
  const tooLarge = files.filter((file) => file.sizeBytes > maxSize);
  if (tooLarge.length === 0) return;
  const lines = tooLarge.map((file) => `  ${file.relativePath}: ${file.sizeBytes} bytes`);
  throw new CommandError(`${tooLarge.length === 1 ? '1 file is' : `${tooLarge.length} files are`} larger than the ${maxSize} bytes the server accepts per file (Tus-Max-Size), so nothing was uploaded:\n${lines.join('\n')}`);
}

export async function runPush(args: string[]): Promise<number> {
  const { values, positionals } = parseCommandArgs(args, {
    name: { type: 'string' },
    producer: { type: 'string' },
    subject: { type: 'string' },
    class: { type: 'string' },
    metadata: { type: 'string' },
    schema: { type: 'string' },
    finalize: { type: 'boolean' },
    parallel: { type: 'string' },
  });
  if (values.help) {
    console.log(PUSH_HELP);
    return 0;
  }
  const [directoryArgument] = requirePositionals(positionals, ['DIR']);
  const packageBody = {
    name: requireOption(values.name, 'name'),
    producer: requireOption(values.producer, 'producer'),
    subject: requireOption(values.subject, 'subject'),
    retention_class: requireOption(values.class, 'class'),
    metadata: readMetadata(values.metadata),
    ...(values.schema ? { metadata_schema: values.schema } : {}),
  };
  const parallel = positiveInteger(values.parallel, 'parallel', 4, 32);
  const connection = connectionFrom(values);
  const directory = path.resolve(directoryArgument);
  if (!fs.statSync(directory, { throwIfNoEntry: false })?.isDirectory()) throw new UsageError(`${directoryArgument} is not a directory.`);

  const files = await listLocalFiles(directory);
  const client = new ApiClient(connection);
  const log = (line: string) => process.stderr.write(`${line}\n`);
  const stateFile = stateFilePath({ url: connection.url, directory: fs.realpathSync(directory), ...packageBody });
  // A second run of the same push would create or fill the same package at once; it stops here.
  const lock = acquireProcessLock(`${stateFile}.lock`, `A push of ${directory} with the same options`);
  try {
    await assertWithinServerLimit(client, files);
    const { pkg, state, created } = await openPackage(client, stateFile, packageBody, log);

    const remoteFiles = new Map<string, FileDigests>(
      (await client.listAll<FileRecord>(`/packages/${pkg.id}/files`, 'files', 1000)).map((record) => [record.relative_path, record]),
    );
    const localPaths = new Set(files.map((file) => file.relativePath));
    const unexpected = [...remoteFiles.keys()].filter((relativePath) => !localPaths.has(relativePath));
    if (unexpected.length > 0) {
      throw new VerificationError(`Package ${pkg.id} holds files that are not in ${directoryArgument}: ${unexpected.join(', ')}.`);
    }
    const pending = files.filter((file) => !remoteFiles.has(file.relativePath));
    if (pkg.status !== 'open' && pending.length > 0) {
      throw new CommandError(`Package ${pkg.id} is ${pkg.status} but lacks ${pending.length} files of ${directoryArgument}, such as ${pending[0].relativePath}.`);
    }

    const progress = createTransferProgress({
      verb: 'upload',
      totalBytes: files.reduce((sum, file) => sum + file.sizeBytes, 0),
      totalFiles: files.length,
      alreadyDoneBytes: files.filter((file) => remoteFiles.has(file.relativePath)).reduce((sum, file) => sum + file.sizeBytes, 0),
      interactive: process.stdout.isTTY === true && values.json !== true,
    });
    let uploadedBytes = 0;
    let uploadedFiles = 0;
    try {
      // Files from an earlier run are hashed here and compared with the server's digests, never sent again.
      for (const file of files) {
        const remote = remoteFiles.get(file.relativePath);
        if (!remote) continue;
        assertSameContent(file, await digestFile(file.absolutePath), remote);
        progress.log(`${file.relativePath}: already on the server, skipped`);
      }

      let next = 0;
      const worker = async () => {
        while (next < pending.length) {
          const file = pending[next++];
          const started = state.uploads[file.relativePath];
          let uploadUrl: string | undefined = started?.url;
          if (started && (started.size_bytes !== file.sizeBytes || started.mtime_ms !== file.mtimeMs)) {
            progress.log(`${file.relativePath}: changed since its upload started; terminating that upload and starting over`);
            await terminateUpload(client, started.url);
            uploadUrl = undefined;
          }
          const [, local] = await Promise.all([
            uploadFileWithTus({
              client,
              packageId: pkg.id,
              file,
              uploadUrl,
              onUploadUrl(url) {
                if (state.uploads[file.relativePath]?.url === url) return;
                state.uploads[file.relativePath] = { url, size_bytes: file.sizeBytes, mtime_ms: file.mtimeMs };
                writePushState(stateFile, state);
              },
              onStart: (resumedBytes) => progress.startFile(file.relativePath, file.sizeBytes, resumedBytes),
              onProgress: (bytesSent) => progress.updateFile(file.relativePath, bytesSent),
              log: (message) => progress.log(message),
            }),
            digestFile(file.absolutePath),
          ]);
          delete state.uploads[file.relativePath];
          writePushState(stateFile, state);
          uploadedBytes += file.sizeBytes;
          uploadedFiles += 1;
          progress.finishFile(file.relativePath, `uploaded, blake3:${local.blake3Hex.slice(0, 16)}…`);
          remoteFiles.set(file.relativePath, { relative_path: file.relativePath, size_bytes: local.sizeBytes, digest_primary_hex: local.blake3Hex, digest_sha256_hex: local.sha256Hex });
        }
      };
      await Promise.all(Array.from({ length: Math.min(parallel, pending.length) }, worker));
    } catch (error) {
      // A file the server rejects as too large fails every later run too; an empty package created by
      // this run is deleted rather than left open.
      if (error instanceof ApiError && error.status === 413 && created && uploadedFiles === 0) {
        progress.stop();
        try {
          await client.send('DELETE', `/packages/${pkg.id}`);
          removePushState(stateFile);
          log(`deleted the empty package ${pkg.id} that this run created`);
        } catch (deleteError) {
          log(`could not delete the empty package ${pkg.id}: ${(deleteError as Error).message}`);
        }
      }
      throw error;
    } finally {
      progress.stop();
    }

    // The server computed its digests from the bytes it stored; they must equal the local ones.
    const stored = await client.listAll<FileRecord>(`/packages/${pkg.id}/files`, 'files', 1000);
    const storedByPath = new Map(stored.map((record) => [record.relative_path, record]));
    for (const file of files) {
      const remote = storedByPath.get(file.relativePath);
      const expected = remoteFiles.get(file.relativePath);
      if (!remote || !expected) throw new VerificationError(`Package ${pkg.id} lacks ${file.relativePath} after the upload.`);
      if (remote.digest_primary_hex !== expected.digest_primary_hex || remote.digest_sha256_hex !== expected.digest_sha256_hex || remote.size_bytes !== expected.size_bytes) {
        throw new VerificationError(
          `The server stored ${file.relativePath} with digests that differ from the local file, which probably changed during the upload. Delete the open package with DELETE /api/v1/packages/${pkg.id} and push again.`,
        );
      }
    }
    log(`uploaded ${uploadedFiles} files (${formatBytes(uploadedBytes)}), skipped ${files.length - pending.length} already on the server`);

    let manifestDigest = pkg.manifest_digest;
    if (values.finalize && pkg.status === 'open') {
      manifestDigest = (await client.postJson<PackageRecord>(`/packages/${pkg.id}/finalize`)).manifest_digest;
    }
    if (values.finalize) removePushState(stateFile);

    if (values.json) {
      console.log(JSON.stringify({ package_id: pkg.id, manifest_digest: values.finalize ? manifestDigest : null, uploaded_files: uploadedFiles, skipped_files: files.length - pending.length, uploaded_bytes: uploadedBytes }));
    } else {
      console.log(pkg.id);
      if (values.finalize) console.log(manifestDigest);
    }
    return 0;
  } finally {
    lock.release();
  }
}
