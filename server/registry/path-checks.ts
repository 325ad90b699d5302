import { and, eq, inArray, isNull, ne, sql, type SQL } from 'drizzle-orm';
import type { Executor } from '@/db/client';
import { files, packages, uploads } from '@/db/schema';
import { ConflictError, NotFoundError } from '../errors';
import { parsePackageId } from './packages';

type PackageRow = typeof packages.$inferSelect;

/** The obstacles to a new file at one path; every field is null when the path is free. */
export interface PathObstacles {
  /** The id of a file already at the path. */
  existingFileId: string | null;
  /** A file that is a parent of the path, or lies below it as if the path were a directory. */
  clashingPath: string | null;
  /** An unfinished upload, other than the caller's own, that targets the path. */
  pendingUploadId: string | null;
}

/**
 * Builds the three checks of a new file's path as scalar subqueries, so that one statement runs them all
 * and can read or lock the package row in the same round trip.
 */
function pathObstacleColumns(packageId: string, relativePath: string, ownUploadId: string | undefined) {
  const segments = relativePath.split('/');
  const parents = segments.slice(0, -1).map((_, index) => segments.slice(0, index + 1).join('/'));
  // The paths that start with `relative_path/` are, in byte order, those from `relative_path/` up to but
  // not including `relative_path0` ('0' follows '/'). Compared with COLLATE "C", this range walks the
  // files_package_path_bytes_idx index instead of reading every file of the package. The parent and the
  // child lookups are separate subqueries, because PostgreSQL uses no index range for an OR of both.
  const below = sql`${files.relativePath} COLLATE "C" >= ${`${relativePath}/`} AND ${files.relativePath} COLLATE "C" < ${`${relativePath}0`}`;
  const fileBelow = sql`(SELECT ${files.relativePath} FROM ${files} WHERE ${and(eq(files.packageId, packageId), below)} LIMIT 1)`;
  const clashingPath =
    parents.length > 0
      ? sql<string | null>`COALESCE((SELECT ${files.relativePath} FROM ${files} WHERE ${and(eq(files.packageId, packageId), inArray(files.relativePath, parents))} LIMIT 1), ${fileBelow})`
      : sql<string | null>`${fileBelow}`;
  const pendingConditions: (SQL | undefined)[] = [
    eq(uploads.packageId, packageId),
    eq(uploads.relativePath, relativePath),
    isNull(uploads.completedAt),
    eq(uploads.terminated, false),
    ownUploadId === undefined ? undefined : ne(uploads.id, ownUploadId),
  ];
  return {
    existingFileId: sql<string | null>`(SELECT ${files.id} FROM ${files} WHERE ${and(eq(files.packageId, packageId), eq(files.relativePath, relativePath))})`,
    clashingPath,
    pendingUploadId: sql<string | null>`(SELECT ${uploads.id} FROM ${uploads} WHERE ${and(...pendingConditions)} LIMIT 1)`,
  };
}

/**
 * Reads a package and finds what blocks a new file at `relativePath` in it, in one statement. With
 * `lock` the package row is locked FOR SHARE for the rest of the transaction (see lockPackage). Throws
 * 404 for an unknown package. The caller checks the package's status first and then passes the
 * obstacles to assertNoObstacles, so a closed package is reported before a taken path.
 */
export async function getPackageWithPathObstacles(
  db: Executor,
  input: { packageId: string; relativePath: string; ownUploadId?: string; lock: boolean },
): Promise<{ pkg: PackageRow; obstacles: PathObstacles }> {
  const packageId = parsePackageId(input.packageId);
  const query = db
    .select({ pkg: packages, ...pathObstacleColumns(packageId, input.relativePath, input.ownUploadId) })
    .from(packages)
    .where(eq(packages.id, packageId));
  const rows = await (input.lock ? query.for('share') : query);
  if (rows.length === 0) throw new NotFoundError('Package', input.packageId);
  const [{ pkg, ...obstacles }] = rows;
  return { pkg, obstacles };
}

/** Throws 409 when the path contains a file or an unfinished upload, or clashes with a file as a directory. */
export async function assertPathFree(tx: Executor, packageId: string, relativePath: string, ownUploadId?: string): Promise<void> {
  const [obstacles] = await tx.select(pathObstacleColumns(packageId, relativePath, ownUploadId)).from(sql`(SELECT 1) AS one`);
  assertNoObstacles(packageId, relativePath, obstacles);
}

/**
 * Throws 409 for the first obstacle: a file at the path, a file/directory clash, an unfinished upload.
 * A package must unpack onto a file system, so no path may be both a file and a directory: `a/b` clashes
 * with an existing file `a`, and `a` clashes with an existing `a/b`.
 */
export function assertNoObstacles(packageId: string, relativePath: string, obstacles: PathObstacles): void {
  if (obstacles.existingFileId !== null) throw pathTakenError(packageId, relativePath);

  const other = obstacles.clashingPath;
  if (other !== null) {
    throw new ConflictError(
      other.length < relativePath.length
        ? `Package ${packageId} has a file at "${other}", so "${relativePath}" cannot place a file inside it.`
        : `Package ${packageId} has a file at "${other}", so "${relativePath}" would have to be both a file and a directory.`,
      { path: relativePath, conflicting_path: other },
    );
  }

  if (obstacles.pendingUploadId !== null) {
    throw new ConflictError(`An unfinished upload already targets "${relativePath}" in package ${packageId}; finish or terminate it first.`, {
      path: relativePath,
      upload_id: obstacles.pendingUploadId,
    });
  }
}

export function pathTakenError(packageId: string, relativePath: string): ConflictError {
  return new ConflictError(`Package ${packageId} already has a file at "${relativePath}"; files are immutable, so use another path.`, {
    path: relativePath,
  });
}
