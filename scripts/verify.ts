/**
 * Checks downloaded packages and exported event logs offline, with no server or database.
 *
 *   npm run verify -- DIR --manifest FILE [--digest blake3:<hex>]
 *   npm run verify -- --events EXPORT
 *
 * DIR contains the package's files at their relative paths; FILE is its manifest in CBOR or JSON, which may
 * lie inside DIR, as the manifest.cbor and manifest.json that `artifact-store pull` writes do. EXPORT is
 * the output of GET /api/v1/events/export (CBOR sequence or JSON Lines). Prints a JSON report on stdout
 * and each problem on stderr. Exit status: 0 when everything matches, 3 on any mismatch, 2 for invalid
 * arguments, 1 for any other failure (an unreadable file, a malformed export). A malformed manifest is a
 * mismatch (3), as in `artifact-store verify`.
 */
import { parseArgs } from 'node:util';
import { verifyEventExportFile } from '../server/integrity/verify-events';
import { verifyDirectory } from '../cli/verify-directory';

const USAGE = [
  'usage: npm run verify -- DIR --manifest FILE [--digest blake3:<hex>]',
  '       npm run verify -- --events EXPORT',
  '  --manifest FILE   the package manifest, CBOR or JSON',
  '  --digest VALUE    the expected manifest digest, blake3:<64 hex>',
  '  --events EXPORT   an event log export to check instead of a package',
].join('\n');

const EXIT_OK = 0;
const EXIT_FAILURE = 1;
const EXIT_USAGE = 2;
const EXIT_MISMATCH = 3;

async function verifyPackage(directory: string, manifestPath: string, digest: string | undefined): Promise<number> {
  // The same check as `artifact-store verify DIR --manifest FILE`, so both give the same verdict.
  const verification = await verifyDirectory(directory, manifestPath, digest);
  console.log(JSON.stringify(verification.report ?? { ok: false, problems: verification.problems }, null, 2));
  for (const line of verification.problems) console.error(line);
  return verification.ok ? EXIT_OK : EXIT_MISMATCH;
}

async function verifyEvents(exportPath: string): Promise<number> {
  const report = await verifyEventExportFile(exportPath);
  console.log(JSON.stringify(report, null, 2));
  if (report.ok) return EXIT_OK;
  console.error(`bad event sequence ${report.first_bad_sequence}: ${report.reason}: ${report.detail}`);
  return report.reason === 'malformed_record' ? EXIT_FAILURE : EXIT_MISMATCH;
}

async function main(): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({
      allowPositionals: true,
      options: { manifest: { type: 'string' }, digest: { type: 'string' }, events: { type: 'string' }, help: { type: 'boolean' } },
    });
  } catch (error) {
    console.error(`${(error as Error).message}\n${USAGE}`);
    return EXIT_USAGE;
  }
  const { values, positionals } = parsed;
  if (values.help) {
    console.log(USAGE);
    return EXIT_OK;
  }

  const packageMode = positionals.length === 1 && values.manifest !== undefined && values.events === undefined;
  const eventsMode = positionals.length === 0 && values.events !== undefined && values.manifest === undefined && values.digest === undefined;
  if (!packageMode && !eventsMode) {
    console.error(`Give either a package directory with --manifest, or --events alone.\n${USAGE}`);
    return EXIT_USAGE;
  }
  if (values.digest !== undefined && !/^blake3:[0-9a-fA-F]{64}$/.test(values.digest)) {
    console.error(`Invalid --digest ${JSON.stringify(values.digest)}: expected blake3:<64 hex characters>.\n${USAGE}`);
    return EXIT_USAGE;
  }

  try {
    return packageMode ? await verifyPackage(positionals[0], values.manifest!, values.digest) : await verifyEvents(values.events!);
  } catch (error) {
    console.error(`verification failed: ${(error as Error).message}`);
    return EXIT_FAILURE;
  }
}

process.exitCode = await main();
