/**
 * Offline check of a downloaded package directory against its manifest, with no server or database.
 *
 * The manifest may be the CBOR form (GET /packages/{id}/manifest) or the JSON form (manifest.json). The
 * manifest digest is BLAKE3 of the CBOR bytes. For a JSON manifest it is computed over the deterministic
 * CBOR encoding of the parsed JSON, which gives the served CBOR bytes because both forms encode the same
 * values under the number model of server/encoding/cbor.ts.
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import { z } from 'zod';
import { digestFile } from '../digest';
import { blake3Hex } from '../digest/blake3-hex';
import { decodeCbor, encodeCanonicalCbor } from '../encoding/cbor';

const ManifestFileEntry = z.object({
  relative_path: z.string().min(1),
  size_bytes: z.number().int().min(0),
  blake3_hex: z.string().regex(/^[0-9a-f]{64}$/),
  sha256_hex: z.string().regex(/^[0-9a-f]{64}$/),
});

const ManifestFiles = z.object({ files: z.array(ManifestFileEntry) });

export type ManifestFileEntry = z.infer<typeof ManifestFileEntry>;

export interface ChangedFile {
  relative_path: string;
  /** The failed checks: any of size, sha256 and blake3. */
  mismatches: ('size' | 'sha256' | 'blake3')[];
  expected: { size_bytes: number; sha256_hex: string; blake3_hex: string };
  actual: { size_bytes: number; sha256_hex: string; blake3_hex: string };
}

export interface PackageVerifyReport {
  ok: boolean;
  /** `blake3:<hex>` of the manifest's CBOR form. */
  manifest_digest: string;
  /** null when no expected digest was given. */
  manifest_digest_ok: boolean | null;
  checked_files: number;
  missing: string[];
  extra: string[];
  changed: ChangedFile[];
}

/** Raised when the manifest cannot be read or parsed; a mismatch is a report, never this error. */
export class ManifestFormatError extends Error {
  override name = 'ManifestFormatError';
}

/** Parses a manifest file's bytes as JSON when they start with `{`, otherwise as CBOR; returns its files and digest. */
export function parseManifest(bytes: Uint8Array): { files: ManifestFileEntry[]; digest: string } {
  const text = bytes[0] === 0x7b;
  let decoded: unknown;
  try {
    decoded = text ? JSON.parse(Buffer.from(bytes).toString('utf8')) : decodeCbor(bytes);
  } catch (error) {
    throw new ManifestFormatError(`The manifest is not valid ${text ? 'JSON' : 'CBOR'}: ${(error as Error).message}`, { cause: error });
  }
  const parsed = ManifestFiles.safeParse(decoded);
  if (!parsed.success) {
    throw new ManifestFormatError(`The manifest has no valid files list: ${parsed.error.issues.map((issue) => `${issue.path.join('.')}: ${issue.message}`).join('; ')}`);
  }
  const cborBytes = text ? encodeCanonicalCbor(decoded) : bytes;
  return { files: parsed.data.files, digest: `blake3:${blake3Hex(cborBytes)}` };
}

/** Lists every entry below `root` as a `/`-separated path in NFC; symbolic links and other non-files are listed too. */
async function listDirectory(root: string): Promise<Map<string, { path: string; regular: boolean }>> {
  const found = new Map<string, { path: string; regular: boolean }>();
  const walk = async (directory: string, prefix: string): Promise<void> => {
    for (const entry of await fs.readdir(directory, { withFileTypes: true })) {
      const relative = prefix ? `${prefix}/${entry.name}` : entry.name;
      const full = path.join(directory, entry.name);
      if (entry.isDirectory()) await walk(full, relative);
      else found.set(relative.normalize('NFC'), { path: full, regular: entry.isFile() });
    }
  };
  await walk(root, '');
  return found;
}

/**
 * Checks `directory` against a manifest: every listed file must exist with the listed size, SHA-256 and
 * BLAKE3, and no other file may exist. Each file is hashed as a stream. When `expectedDigest`
 * (`blake3:<hex>`) is given, the manifest itself must have that digest. Throws ManifestFormatError for
 * an unreadable manifest and the fs error for an unreadable directory.
 */
export async function verifyPackageDirectory(directory: string, manifestBytes: Uint8Array, expectedDigest?: string): Promise<PackageVerifyReport> {
  const manifest = parseManifest(manifestBytes);
  const onDisk = await listDirectory(directory);
  const report: PackageVerifyReport = {
    ok: true,
    manifest_digest: manifest.digest,
    manifest_digest_ok: expectedDigest === undefined ? null : expectedDigest.toLowerCase() === manifest.digest,
    checked_files: 0,
    missing: [],
    extra: [],
    changed: [],
  };

  for (const entry of manifest.files) {
    const local = onDisk.get(entry.relative_path.normalize('NFC'));
    onDisk.delete(entry.relative_path.normalize('NFC'));
    if (!local || !local.regular) {
      report.missing.push(entry.relative_path);
      continue;
    }
    const actual = await digestFile(local.path);
    report.checked_files += 1;
    const mismatches: ChangedFile['mismatches'] = [];
    if (actual.sizeBytes !== entry.size_bytes) mismatches.push('size');
    if (actual.sha256Hex !== entry.sha256_hex) mismatches.push('sha256');
    if (actual.blake3Hex !== entry.blake3_hex) mismatches.push('blake3');
    if (mismatches.length > 0) {
      report.changed.push({
        relative_path: entry.relative_path,
        mismatches,
        expected: { size_bytes: entry.size_bytes, sha256_hex: entry.sha256_hex, blake3_hex: entry.blake3_hex },
        actual: { size_bytes: actual.sizeBytes, sha256_hex: actual.sha256Hex, blake3_hex: actual.blake3Hex },
      });
    }
  }
  report.extra = [...onDisk.keys()].sort();
  report.ok = report.missing.length === 0 && report.extra.length === 0 && report.changed.length === 0 && report.manifest_digest_ok !== false;
  return report;
}
