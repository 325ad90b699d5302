import fs from 'node:fs';
import path from 'node:path';
import { ManifestFormatError, parseManifest, verifyPackageDirectory, type PackageVerifyReport } from '../server/integrity/verify-package';
import { CommandError } from './errors';

/** File names of the manifest that `artifact-store pull` writes beside the package files. */
export const MANIFEST_CBOR_NAME = 'manifest.cbor';
export const MANIFEST_JSON_NAME = 'manifest.json';

/** Outcome of checking a directory: `problems` lists each mismatch as a line for stderr. */
export interface DirectoryVerification {
  ok: boolean;
  /** Undefined when the manifest itself is not a valid manifest. */
  report: PackageVerifyReport | undefined;
  problems: string[];
}

function relativeInside(directory: string, file: string): string | undefined {
  const relative = path.relative(path.resolve(directory), path.resolve(file));
  if (relative === '' || relative.startsWith('..') || path.isAbsolute(relative)) return undefined;
  return relative.split(path.sep).join('/');
}

/**
 * Checks `directory` against a manifest, offline; `artifact-store verify` and `npm run verify` share it.
 * The manifest is `manifestPath`, else DIR/manifest.cbor, else DIR/manifest.json. The manifest file
 * itself and the manifest files pull writes at the top of DIR are not package files: each of them that
 * the manifest does not list must describe the same manifest, or it is reported as a problem. A
 * manifest that is not valid CBOR or JSON, or lacks a valid files list, is a problem too (its bytes
 * differ from what the server sent). Raises CommandError only when the manifest cannot be read.
 */
export async function verifyDirectory(directory: string, manifestPath: string | undefined, expectedDigest: string | undefined): Promise<DirectoryVerification> {
  const cborPath = path.join(directory, MANIFEST_CBOR_NAME);
  const jsonPath = path.join(directory, MANIFEST_JSON_NAME);
  const chosenPath = manifestPath ?? (fs.existsSync(cborPath) ? cborPath : jsonPath);
  let manifestBytes: Buffer;
  try {
    manifestBytes = fs.readFileSync(chosenPath);
  } catch (error) {
    throw new CommandError(`Cannot read the manifest ${chosenPath}: ${(error as Error).message}. Pass --manifest FILE.`);
  }

  let report: PackageVerifyReport;
  try {
    report = await verifyPackageDirectory(directory, manifestBytes, expectedDigest);
  } catch (error) {
    if (!(error instanceof ManifestFormatError)) throw error;
    return { ok: false, report: undefined, problems: [`${chosenPath}: ${error.message}`] };
  }

  const problems: string[] = [];
  const manifestFiles = new Set([relativeInside(directory, chosenPath), MANIFEST_CBOR_NAME, MANIFEST_JSON_NAME]);
  for (const name of manifestFiles) {
    if (name === undefined || !report.extra.includes(name)) continue;
    report.extra = report.extra.filter((extra) => extra !== name);
    if (name === relativeInside(directory, chosenPath)) continue;
    try {
      if (parseManifest(fs.readFileSync(path.join(directory, name))).digest !== report.manifest_digest) {
        problems.push(`${name}: describes a different manifest than ${chosenPath}`);
      }
    } catch (error) {
      if (!(error instanceof ManifestFormatError)) throw error;
      problems.push(`${name}: ${error.message}`);
    }
  }

  if (report.manifest_digest_ok === false) problems.push(`manifest digest mismatch: expected ${expectedDigest}, computed ${report.manifest_digest}`);
  for (const file of report.missing) problems.push(`missing: ${file}`);
  for (const file of report.extra) problems.push(`extra: ${file}`);
  for (const file of report.changed) problems.push(`changed: ${file.relative_path} (${file.mismatches.join(', ')} differ)`);
  report.ok = problems.length === 0;
  return { ok: report.ok, report, problems };
}
