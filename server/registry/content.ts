import type { Readable } from 'node:stream';
import { and, eq } from 'drizzle-orm';
import { z } from 'zod';
import type { Executor } from '@/db/client';
import { blobs, files, packages, storageLocations } from '@/db/schema';
import { ConflictError, DomainError, GoneError, NotFoundError } from '../errors';
import type { Backend, ByteRange } from '../storage/backend';
import { getPackageRow } from './packages';
import { baseName } from './relative-path';
import { recordLocationFailure } from '../integrity/location-status';
import { verifyWhileStreaming } from '../integrity/verifying-stream';
import { getLogger } from '../logger';

/** The actor recorded when a download finds a stored copy whose bytes do not match their digest. */
export const DOWNLOAD_CHECK_ACTOR = 'system:download-check';

/** Bytes ready to serve: their size, content address, and a function that opens them (optionally a range). */
export interface ContentHandle {
  sizeBytes: number;
  contentAddress: string;
  mediaType: string;
  fileName: string;
  lastModified: Date;
  open(range?: ByteRange): Promise<Readable>;
}

type LocationRow = typeof storageLocations.$inferSelect;

/**
 * Opens a stored blob from the first backend holding a copy whose last check was good. A whole-object
 * read errors before its last byte when the bytes do not match the digest, and marks that copy corrupt.
 */
async function openBlob(db: Executor, backends: Map<string, Backend>, contentAddress: string) {
  const [blob] = await db.select().from(blobs).where(eq(blobs.contentAddress, contentAddress));
  const locations = await db
    .select()
    .from(storageLocations)
    .where(and(eq(storageLocations.contentAddress, contentAddress), eq(storageLocations.status, 'ok')));
  if (!blob) throw contentUnavailableError(contentAddress);
  return { sizeBytes: blob.sizeBytes, open: openerFor(db, backends, contentAddress, blob.sizeBytes, locations) };
}

function contentUnavailableError(contentAddress: string): DomainError {
  return new DomainError(500, 'Stored content unavailable', `No readable copy of ${contentAddress} is available; an operator must check storage health.`);
}

/**
 * Returns the function that reads a blob from the first of `locations` on a configured backend, or throws
 * 500 when the blob row or every such location is missing.
 */
function openerFor(
  db: Executor,
  backends: Map<string, Backend>,
  contentAddress: string,
  sizeBytes: number | undefined,
  locations: LocationRow[],
): (range?: ByteRange) => Promise<Readable> {
  const location = locations.find((candidate) => backends.has(candidate.backendId));
  if (sizeBytes === undefined || !location) throw contentUnavailableError(contentAddress);
  const backend = backends.get(location.backendId)!;
  const expected = { blake3Hex: contentAddress.slice('blake3:'.length), sizeBytes };

  // A whole-object read is verified as it streams. A range cannot be checked without reading the rest of
  // the object, so ranges rely on the scrub.
  return async (range?: ByteRange): Promise<Readable> => {
    const stream = await backend.read(location.objectKey, range);
    if (range) return stream;
    return verifyWhileStreaming(stream, expected, (mismatch) => {
      const log = getLogger().child({ content_address: contentAddress, backend_id: location.backendId });
      log.error({ err: mismatch }, 'a download found a stored copy that does not match its digest; marking it corrupt');
      recordLocationFailure(db, location, 'corrupt', mismatch.message, DOWNLOAD_CHECK_ACTOR).catch((error: unknown) =>
        log.error({ err: error }, 'failed to mark a corrupt stored copy'),
      );
    });
  };
}

/**
 * The bytes of a file; 404 for an unknown id, 410 Gone once its package was deleted by retention. One
 * query reads the file, its package's status, its blob's size and the blob's good copies.
 */
export async function openFileContent(db: Executor, backends: Map<string, Backend>, fileId: string): Promise<ContentHandle> {
  const id = z.uuid().safeParse(fileId);
  if (!id.success) throw new NotFoundError('File', fileId);
  const rows = await db
    .select({ file: files, packageStatus: packages.status, blobSizeBytes: blobs.sizeBytes, location: storageLocations })
    .from(files)
    .innerJoin(packages, eq(files.packageId, packages.id))
    .leftJoin(blobs, eq(blobs.contentAddress, files.contentAddress))
    .leftJoin(storageLocations, and(eq(storageLocations.contentAddress, files.contentAddress), eq(storageLocations.status, 'ok')))
    .where(eq(files.id, id.data.toLowerCase()));
  if (rows.length === 0) throw new NotFoundError('File', fileId);

  const [{ file, packageStatus, blobSizeBytes }] = rows;
  if (packageStatus === 'deleted') {
    throw new GoneError(`The content of file ${file.id} was deleted with its package ${file.packageId} under its retention class.`, {
      package_id: file.packageId,
    });
  }
  const locations = rows.flatMap((row) => (row.location ? [row.location] : []));
  const open = openerFor(db, backends, file.contentAddress, blobSizeBytes ?? undefined, locations);
  return {
    sizeBytes: file.sizeBytes,
    contentAddress: file.contentAddress,
    mediaType: file.mediaType,
    fileName: baseName(file.relativePath),
    lastModified: file.createdAt,
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
  const { sizeBytes, open } = await openBlob(db, backends, address);
  return {
    sizeBytes,
    contentAddress: address,
    mediaType: format === 'cbor' ? 'application/cbor' : 'application/json',
    fileName: `${row.id}.manifest.${format}`,
    lastModified: row.finalizedAt ?? row.createdAt,
    manifestDigest: row.manifestDigest,
    open,
  };
}
