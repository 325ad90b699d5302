import fs from 'node:fs';
import path from 'node:path';
import { parseManifest, verifyPackageDirectory } from '../../server/integrity/verify-package';
import { CommandError, UsageError } from '../errors';
import { parseCommandArgs, requirePositionals } from '../options';
import { MANIFEST_CBOR_NAME, MANIFEST_JSON_NAME } from './pull';

export const VERIFY_HELP = `usage: artifact-store verify DIR [--manifest FILE] [--digest blake3:HEX] [--json]

Checks a pulled directory offline, with no server: every file the manifest lists must exist with its
size, SHA-256 and BLAKE3, and no other file may exist. The manifest defaults to DIR/${MANIFEST_CBOR_NAME},
else DIR/${MANIFEST_JSON_NAME}; when both exist they must describe the same manifest. Exit status 0 when
everything matches, 3 on any mismatch (each named on stderr), 1 when the manifest cannot be read.

  --manifest FILE      manifest to check against, CBOR or JSON
  --digest VALUE       expected manifest digest, blake3:<64 hex>, for example from the package record
  --json               print the report as JSON
  -h, --help           print this help`;

export async function runVerify(args: string[]): Promise<number> {
  const { values, positionals } = parseCommandArgs(args, { manifest: { type: 'string' }, digest: { type: 'string' } });
  if (values.help) {
    console.log(VERIFY_HELP);
    return 0;
  }
  const [directory] = requirePositionals(positionals, ['DIR']);
  if (values.digest !== undefined && !/^blake3:[0-9a-fA-F]{64}$/.test(values.digest)) {
    throw new UsageError(`Invalid --digest ${JSON.stringify(values.digest)}: expected blake3:<64 hex characters>.`);
  }
  if (!fs.statSync(directory, { throwIfNoEntry: false })?.isDirectory()) throw new UsageError(`${directory} is not a directory.`);

  const cborPath = path.join(directory, MANIFEST_CBOR_NAME);
  const jsonPath = path.join(directory, MANIFEST_JSON_NAME);
  const manifestPath = values.manifest ?? (fs.existsSync(cborPath) ? cborPath : jsonPath);
  let manifestBytes: Buffer;
  try {
    manifestBytes = fs.readFileSync(manifestPath);
  } catch (error) {
    throw new CommandError(`Cannot read the manifest ${manifestPath}: ${(error as Error).message}. Pass --manifest FILE.`);
  }
  const problems: string[] = [];
  if (values.manifest === undefined && fs.existsSync(cborPath) && fs.existsSync(jsonPath)) {
    const other = parseManifest(fs.readFileSync(jsonPath));
    if (other.digest !== parseManifest(manifestBytes).digest) problems.push(`${MANIFEST_JSON_NAME} and ${MANIFEST_CBOR_NAME} describe different manifests`);
  }

  const report = await verifyPackageDirectory(directory, manifestBytes, values.digest);
  // The manifest files written by pull sit beside the package files and are not package files themselves.
  report.extra = report.extra.filter((name) => name !== MANIFEST_CBOR_NAME && name !== MANIFEST_JSON_NAME);
  if (report.manifest_digest_ok === false) problems.push(`manifest digest mismatch: expected ${values.digest}, computed ${report.manifest_digest}`);
  for (const file of report.missing) problems.push(`missing: ${file}`);
  for (const file of report.extra) problems.push(`extra: ${file}`);
  for (const file of report.changed) problems.push(`changed: ${file.relative_path} (${file.mismatches.join(', ')} differ)`);
  report.ok = problems.length === 0;

  if (values.json) console.log(JSON.stringify(report, null, 2));
  for (const line of problems) console.error(line);
  if (report.ok) {
    if (!values.json) console.log(`ok: ${report.checked_files} files match manifest ${report.manifest_digest}`);
    return 0;
  }
  return 3;
}
