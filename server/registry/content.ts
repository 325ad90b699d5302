import type { Readable } from 'node:stream';
import { and, eq } from 'drizzle-orm';
import type { Executor } from '@/db/client';
import { blobs, storageLocations } from '@/db/schema';
import { ConflictError, DomainError, GoneError } from '../errors';
import type { Backend, ByteRange } from '../storage/backend';
import { getFile } from './files';
import { getPackageRow } from './packages';
import { baseName } from './relative-path';

/** Bytes ready to serve: their size, content address, and a function that opens them (optionally a range). */
export interface ContentHandle {
  sizeBytes: number;
  contentAddress: string;
  mediaType: string;
  fileName: string;
  lastModified: Date;
  open(range?: ByteRange): Promise<Readable>;
}

/** Opens a stored blob from the first backend holding a copy whose last check was good. */
async function openBlob(db: Executor, backends: Map<string, Backend>, contentAddress: string) {
  const [blob] = await db.select().from(blobs).where(eq(blobs.contentAddress, contentAddress));
  const locations = await db
    .select()
    .from(storageLocations)
    .where(and(eq(storageLocations.contentAddress, contentAddress), eq(storageLocations.status, 'ok')));
  const location = locations.find((candidate) => backends.has(candidate.backendId));
  if (!blob || !location) {
    throw new DomainError(500, 'Stored content unavailable', `No readable copy of ${contentAddress} is available; an operator must check storage health.`);
  }
  const backend = backends.get(location.backendId)!;
  return { blob, open: (range?: ByteRange) => backend.read(location.objectKey, range) };
}

/** The bytes of a file; 410 Gone once its package was deleted by retention. */
export async function openFileContent(db: Executor, backends: Map<string, Backend>, fileId: string): Promise<ContentHandle> {
  const file = await getFile(db, fileId);
  if (file.package_status === 'deleted') {
    throw new GoneError(`The content of file ${file.id} was deleted with its package ${file.package_id} under its retention class.`, {
      package_id: file.package_id,
    });
  }
  const { open } = await openBlob(db, backends, file.content_address);
  return {
    sizeBytes: file.size_bytes,
    contentAddress: file.content_address,
    mediaType: file.media_type,
    fileName: baseName(file.relative_path),
    lastModified: new Date(file.created_at),
    open,
  };
}

export type ManifestFormat = 'cbor' | 'json';

/** A finalized package's manifest in one encoding; 409 while the package is still open. */
export async function openManifest(
  db: Executor,
  backends: Map<string, Backend>,
  packageId: string,
  format: ManifestFormat,
): Promise<ContentHandle & { manifestDigest: string }> {
  const row = await getPackageRow(db, packageId);
  const address = format === 'cbor' ? row.manifestCborAddress : row.manifestJsonAddress;
  if (row.status === 'open' || !address || !row.manifestDigest) {
    throw new ConflictError(`Package ${row.id} is open; its manifest exists once it is finalized.`, { package_status: row.status });
  }
  const { blob, open } = await openBlob(db, backends, address);
  return {
    sizeBytes: blob.sizeBytes,
    contentAddress: address,
    mediaType: format === 'cbor' ? 'application/cbor' : 'application/json',
    fileName: `${row.id}.manifest.${format}`,
    lastModified: row.finalizedAt ?? row.createdAt,
    manifestDigest: row.manifestDigest,
    open,
  };
}
