import fs from 'node:fs';
import { UsageError } from '../errors';
import { parseCommandArgs, requirePositionals } from '../options';
import { MANIFEST_CBOR_NAME, MANIFEST_JSON_NAME, verifyDirectory } from '../verify-directory';

export const VERIFY_HELP = `usage: artifact-store verify DIR [--manifest FILE] [--digest blake3:HEX] [--json]

Checks a pulled directory offline, with no server: every file the manifest lists must exist with its
size, SHA-256 and BLAKE3, and no other file may exist. The manifest defaults to DIR/${MANIFEST_CBOR_NAME},
else DIR/${MANIFEST_JSON_NAME}. Those two files, when present and not package files, must describe the
same manifest. Exit status 0 when everything matches, 3 on any mismatch or a manifest that is not valid
(each named on stderr), 1 when the manifest cannot be read.

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

  const verification = await verifyDirectory(directory, values.manifest, values.digest);
  if (values.json) console.log(JSON.stringify(verification.report ?? { ok: false, problems: verification.problems }, null, 2));
  for (const line of verification.problems) console.error(line);
  if (verification.ok) {
    if (!values.json) console.log(`ok: ${verification.report!.checked_files} files match manifest ${verification.report!.manifest_digest}`);
    return 0;
  }
  return 3;
}
