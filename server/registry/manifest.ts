import { and, asc, eq, gt, sql } from 'drizzle-orm';
import { z } from 'zod';
import type { Executor } from '@/db/client';
import { files, packages } from '@/db/schema';
import { compareCborKeys, encodeArrayHeader, encodeCanonicalCbor, encodeMapHeader } from '../encoding/cbor';
import { canonicalJson } from '../encoding/jcs';
import { PackageRecord } from './packages';

export const MANIFEST_VERSION = 1;
const PAGE_SIZE = 1000;

type PackageRow = typeof packages.$inferSelect;

/** One file as the manifest lists it. */
export const ManifestFile = z.object({
  relative_path: z.string(),
  media_type: z.string(),
  size_bytes: z.number().int().min(0),
  blake3_hex: z.string().regex(/^[0-9a-f]{64}$/),
  sha256_hex: z.string().regex(/^[0-9a-f]{64}$/),
});
export type ManifestFile = z.infer<typeof ManifestFile>;

/**
 * A finalized package's manifest, served as deterministic CBOR and as RFC 8785 JSON with the same fields.
 * `files` is sorted by the UTF-8 bytes of `relative_path`.
 */
export const Manifest = z.object({
  manifest_version: z.literal(MANIFEST_VERSION),
  package: PackageRecord.pick({
    id: true,
    name: true,
    producer: true,
    subject: true,
    retention_class: true,
    metadata_schema: true,
    metadata: true,
    created_at: true,
  }).extend({ finalized_at: z.iso.datetime() }),
  file_count: z.number().int().min(0),
  total_size_bytes: z.number().int().min(0),
  files: z.array(ManifestFile),
});
export type Manifest = z.infer<typeof Manifest>;

/**
 * The manifest's fields other than `files`. They are fixed at finalization: `expires_at` and holds are
 * left out because retention may change them later, and the manifest bytes must never change.
 */
export function manifestHeader(row: PackageRow, finalizedAt: Date, fileCount: number, totalSizeBytes: number): Omit<Manifest, 'files'> {
  return {
    manifest_version: MANIFEST_VERSION,
    package: {
      id: row.id,
      name: row.name,
      producer: row.producer,
      subject: row.subject,
      retention_class: row.retentionClass,
      metadata_schema: row.metadataSchema,
      metadata: row.metadata as Record<string, unknown>,
      created_at: row.createdAt.toISOString(),
      finalized_at: finalizedAt.toISOString(),
    },
    file_count: fileCount,
    total_size_bytes: totalSizeBytes,
  };
}

/** Reads a package's files in UTF-8 byte order of their paths (COLLATE "C"), a page at a time. */
async function* readManifestFiles(db: Executor, packageId: string): AsyncGenerator<ManifestFile> {
  let after: string | null = null;
  for (;;) {
    const rows: ManifestFile[] = await db
      .select({
        relative_path: files.relativePath,
        media_type: files.mediaType,
        size_bytes: files.sizeBytes,
        blake3_hex: files.digestPrimaryHex,
        sha256_hex: files.digestSha256Hex,
      })
      .from(files)
      .where(and(eq(files.packageId, packageId), after === null ? undefined : gt(sql`${files.relativePath} COLLATE "C"`, after)))
      .orderBy(asc(sql`${files.relativePath} COLLATE "C"`))
      .limit(PAGE_SIZE);
    yield* rows;
    if (rows.length < PAGE_SIZE) return;
    after = rows[rows.length - 1].relative_path;
  }
}

/**
 * Streams the manifest as deterministic CBOR (RFC 8949 section 4.2.1): the top-level map's keys are
 * written in the order of their encoded bytes, every length is definite, and the `files` array is encoded
 * item by item, so a package with many files never needs the whole manifest in memory.
 */
export async function* streamManifestCbor(
  db: Executor,
  header: Record<string, unknown>,
  fileCount: number,
  packageId: string,
): AsyncGenerator<Uint8Array> {
  const entries: { key: Uint8Array; write: () => AsyncGenerator<Uint8Array> }[] = Object.entries(header).map(([key, value]) => ({
    key: encodeCanonicalCbor(key),
    write: async function* () {
      yield encodeCanonicalCbor(value);
    },
  }));
  entries.push({
    key: encodeCanonicalCbor('files'),
    write: async function* () {
      yield encodeArrayHeader(fileCount);
      let written = 0;
      for await (const file of readManifestFiles(db, packageId)) {
        written += 1;
        yield encodeCanonicalCbor(file);
      }
      if (written !== fileCount) throw new Error(`Manifest of package ${packageId} expected ${fileCount} files but read ${written}.`);
    },
  });
  entries.sort((a, b) => compareCborKeys(a.key, b.key));

  yield encodeMapHeader(entries.length);
  for (const entry of entries) {
    yield entry.key;
    yield* entry.write();
  }
}

const encoder = new TextEncoder();

/**
 * Streams the manifest as RFC 8785 JSON. JCS sorts object keys by their UTF-16 code units; every key here
 * is ASCII, so plain string order is that order. Each value, and each file, is canonicalized on its own.
 */
export async function* streamManifestJson(db: Executor, header: Record<string, unknown>, packageId: string): AsyncGenerator<Uint8Array> {
  const keys = [...Object.keys(header), 'files'].sort();
  yield encoder.encode('{');
  for (const [index, key] of keys.entries()) {
    yield encoder.encode(`${index === 0 ? '' : ','}${JSON.stringify(key)}:`);
    if (key !== 'files') {
      yield encoder.encode(canonicalJson(header[key]));
      continue;
    }
    yield encoder.encode('[');
    let first = true;
    for await (const file of readManifestFiles(db, packageId)) {
      yield encoder.encode((first ? '' : ',') + canonicalJson(file));
      first = false;
    }
    yield encoder.encode(']');
  }
  yield encoder.encode('}');
}
