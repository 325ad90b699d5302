import { sql, type SQL } from 'drizzle-orm';
import { rowsOf, type Executor } from '@/db/client';
import { PreparedSql } from '@/db/prepared';
import { files, packages, uploads } from '@/db/schema';
import { ConflictError, NotFoundError } from '../errors';
import { parsePackageId } from './packages';

type PackageRow = typeof packages.$inferSelect;

/** The columns of a package that adding a file to it needs. */
export type PackageStatusRow = Pick<PackageRow, 'id' | 'status'>;

/** The obstacles to a new file at one path; every field is null when the path is free. */
export interface PathObstacles {
  /** The id of a file already at the path. */
  existingFileId: string | null;
  /** A file that is a parent of the path, or lies below it as if the path were a directory. */
  clashingPath: string | null;
  /** An unfinished upload, other than the caller's own, that targets the path. */
  pendingUploadId: string | null;
  /** The path of an unfinished upload, other than the caller's own, at a parent of the path or below it. */
  clashingUploadPath: string | null;
  /** True when a concurrent transaction holds a clashing path lock (see pathCheckStatement). */
  pathBusy: boolean;
}

/** The path a statement checks, as SQL: placeholders, or the columns of a row with one path per file. */
export interface PathTarget {
  path: SQL;
  /** A text[] of the path's parent directories, shortest first. */
  parents: SQL;
  /** `path || '/'` and `path || '0'`, the bounds of the paths below it (see pathObstacleColumns). */
  belowFrom: SQL;
  belowTo: SQL;
  /** The caller's own unfinished upload, which is no obstacle; a text or NULL. */
  ownUploadId: SQL;
}

/** The PathTarget of the placeholders that pathCheckValues fills. */
const PLACEHOLDER_TARGET: PathTarget = {
  path: sql`${sql.placeholder('relative_path')}`,
  parents: sql`${sql.placeholder('parents')}::text[]`,
  belowFrom: sql`${sql.placeholder('below_from')}`,
  belowTo: sql`${sql.placeholder('below_to')}`,
  ownUploadId: sql`${sql.placeholder('own_upload_id')}::text`,
};

/**
 * SQL for the obstacles to a new file at a path of package `packageId`, as the columns existing_file_id,
 * clashing_path, pending_upload_id and clashing_upload_path. Scalar subqueries, so one statement runs them
 * all. By default their values come from the placeholders that pathCheckValues fills.
 */
export function pathObstacleColumns(packageId: SQL, target: PathTarget = PLACEHOLDER_TARGET): SQL {
  const path = target.path;
  const otherUnfinished = sql`u.completed_at IS NULL AND u.terminated = false AND u.id IS DISTINCT FROM ${target.ownUploadId}`;
  // The paths that start with `relative_path/` are, in byte order, those from `relative_path/` up to but
  // not including `relative_path0` ('0' follows '/'). Compared with COLLATE "C", this range walks the
  // files_package_path_bytes_idx index instead of reading every file of the package. The parent and the
  // child lookups are separate subqueries, because PostgreSQL uses no index range for an OR of both.
  return sql`
    (SELECT f.id FROM ${files} f WHERE f.package_id = ${packageId} AND f.relative_path = ${path}) AS existing_file_id,
    COALESCE(
      (SELECT f.relative_path FROM ${files} f
        WHERE f.package_id = ${packageId} AND f.relative_path = ANY(${target.parents}) LIMIT 1),
      (SELECT f.relative_path FROM ${files} f
        WHERE f.package_id = ${packageId} AND f.relative_path COLLATE "C" >= ${target.belowFrom}
          AND f.relative_path COLLATE "C" < ${target.belowTo} LIMIT 1)
    ) AS clashing_path,
    (SELECT u.id FROM ${uploads} u
      WHERE u.package_id = ${packageId} AND u.relative_path = ${path} AND ${otherUnfinished} LIMIT 1) AS pending_upload_id,
    COALESCE(
      (SELECT u.relative_path FROM ${uploads} u
        WHERE u.package_id = ${packageId} AND u.relative_path = ANY(${target.parents}) AND ${otherUnfinished} LIMIT 1),
      (SELECT u.relative_path FROM ${uploads} u
        WHERE u.package_id = ${packageId} AND u.relative_path COLLATE "C" >= ${target.belowFrom}
          AND u.relative_path COLLATE "C" < ${target.belowTo} AND ${otherUnfinished} LIMIT 1)
    ) AS clashing_upload_path`;
}

/** Returns the placeholder values of pathObstacleColumns for a path and the caller's own tus upload, if any. */
export function pathCheckValues(relativePath: string, ownUploadId: string | undefined): Record<string, unknown> {
  const segments = relativePath.split('/');
  return {
    relative_path: relativePath,
    parents: segments.slice(0, -1).map((_, index) => segments.slice(0, index + 1).join('/')),
    below_from: `${relativePath}/`,
    below_to: `${relativePath}0`,
    own_upload_id: ownUploadId ?? null,
  };
}

/**
 * The statement that reads a package's id and status and finds what blocks a new file at a path in it.
 * With `lockPackage` the package row is locked FOR SHARE (see lockPackage), and then transaction-scoped
 * advisory locks are tried on the path: shared on each parent directory and exclusive on the path itself.
 * So `d` and `d/x` in one package exclude each other, while `d/x` and `d/y` do not. The locks are tried,
 * not waited for: a request that finds one taken gets 409 at once. Waiting would let one slow upload
 * (a large file copied to a replica) hold up every upload into its directory, because PostgreSQL queues
 * shared requests behind a waiting exclusive one. With `lockBlob` the
 * statement last takes the advisory lock of the blob about to be placed (see lockBlob). The package row
 * is locked inside a materialized CTE, so its lock is taken before the others, the order every other
 * holder of the package row and a blob lock uses.
 *
 * The obstacles are read in the statement's snapshot, taken before the locks were acquired. So they can
 * miss a file or upload that a transaction holding one of the locks committed just before it released
 * them, and a later statement of the same transaction must check them again, as insertFileRows does.
 * Once the locks are held, no such file or upload can appear before this transaction ends.
 */
function pathCheckStatement(name: string, options: { lockPackage: boolean; lockBlob: boolean }): PreparedSql {
  return new PreparedSql(name, () => {
    const locks = options.lockPackage
      ? pathLocksUnlessBlocked(sql`checked`, sql`checked.id`, { ...PLACEHOLDER_TARGET, path: sql`${sql.placeholder('relative_path')}::text` })
      : sql`true`;
    return sql`
      WITH pkg AS MATERIALIZED (
        SELECT id, status FROM ${packages} WHERE id = ${sql.placeholder('package_id')}${options.lockPackage ? sql` FOR SHARE` : sql``}
      ), checked AS MATERIALIZED (
        SELECT pkg.id, pkg.status, ${pathObstacleColumns(sql`pkg.id`)} FROM pkg
      )
      SELECT checked.*, ${locks} AS path_locked
        ${options.lockBlob ? sql`, pg_advisory_xact_lock(hashtextextended(${sql.placeholder('content_address')}, 0)) AS blob_locked` : sql``}
      FROM checked`;
  });
}

/**
 * SQL that tries the transaction-scoped advisory locks of a path (see pathCheckStatement): shared on each
 * parent directory, exclusive on the path. True when every lock was acquired. Advisory locks are
 * reentrant within a session, so two paths of one transaction never exclude each other.
 */
function pathLocks(packageId: SQL, target: PathTarget): SQL {
  const pathLockKey = (path: SQL) => sql`hashtextextended('artifact-store:path:' || ${packageId}::text || '/' || ${path}, 0)`;
  return sql`(SELECT coalesce(bool_and(pg_try_advisory_xact_lock_shared(${pathLockKey(sql`parent`)})), true)
          FROM unnest(${target.parents}) AS parent)
        AND pg_try_advisory_xact_lock(${pathLockKey(target.path)})`;
}

/**
 * SQL that tries the path's locks (see pathLocks) only for a row of `row` whose package is open and whose
 * path has no obstacle, and is true otherwise. A request that fails anyway then holds no lock that would
 * make a concurrent request for a clashing path fail as busy until its transaction ends.
 */
export function pathLocksUnlessBlocked(row: SQL, packageId: SQL, target: PathTarget): SQL {
  return sql`CASE WHEN ${row}.status = 'open' AND ${row}.existing_file_id IS NULL AND ${row}.clashing_path IS NULL
          AND ${row}.pending_upload_id IS NULL AND ${row}.clashing_upload_path IS NULL
        THEN ${pathLocks(packageId, target)} ELSE true END`;
}

const pathCheck = pathCheckStatement('package_path_check', { lockPackage: false, lockBlob: false });
const pathCheckLocked = pathCheckStatement('package_path_check_locked', { lockPackage: true, lockBlob: false });
const pathCheckLockedWithBlob = pathCheckStatement('package_path_check_locked_blob', { lockPackage: true, lockBlob: true });

/**
 * Reads a package's id and status and finds what blocks a new file at `relativePath` in it, in one
 * statement. With `lock` the package row is locked FOR SHARE for the rest of the transaction (see
 * lockPackage) and the path's advisory locks are tried, and with `lockBlobOf` (which implies `lock`)
 * also the advisory lock of that content address (see lockBlob). With `lock`, the caller must check the
 * obstacles again in a later statement (see pathCheckStatement). Throws 404 for an unknown package. The
 * caller checks the package's status first and then passes the obstacles to assertNoObstacles, so a
 * closed package is reported before a taken path.
 */
export async function getPackageWithPathObstacles(
  db: Executor,
  input: { packageId: string; relativePath: string; ownUploadId?: string; lock: boolean; lockBlobOf?: string },
): Promise<{ pkg: PackageStatusRow; obstacles: PathObstacles }> {
  const packageId = parsePackageId(input.packageId);
  let statement = input.lock ? pathCheckLocked : pathCheck;
  if (input.lockBlobOf !== undefined) statement = pathCheckLockedWithBlob;
  const result = await statement.execute(db, {
    package_id: packageId,
    ...pathCheckValues(input.relativePath, input.ownUploadId),
    content_address: input.lockBlobOf,
  });
  const [row] = rowsOf<{ id: string; status: PackageRow['status']; path_locked: boolean } & ObstacleRow>(result);
  if (row === undefined) throw new NotFoundError('Package', input.packageId);
  return { pkg: { id: row.id, status: row.status }, obstacles: { ...obstaclesOf(row), pathBusy: !row.path_locked } };
}

/** The columns of pathObstacleColumns as a statement returns them. */
export interface ObstacleRow {
  existing_file_id: string | null;
  clashing_path: string | null;
  pending_upload_id: string | null;
  clashing_upload_path: string | null;
}

export function obstaclesOf(row: ObstacleRow): PathObstacles {
  return {
    existingFileId: row.existing_file_id,
    clashingPath: row.clashing_path,
    pendingUploadId: row.pending_upload_id,
    clashingUploadPath: row.clashing_upload_path,
    pathBusy: false,
  };
}

/**
 * Throws 409 for the first obstacle: a file at the path, a file/directory clash, a concurrent request for a
 * clashing path, an unfinished upload to the path, an unfinished upload to a parent or child path.
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

  if (obstacles.pathBusy) {
    throw new ConflictError(
      `Another request is adding a file or upload at "${relativePath}", inside it or at one of its parent directories in package ${packageId}; retry once it has finished.`,
      { path: relativePath },
    );
  }

  if (obstacles.pendingUploadId !== null) {
    throw new ConflictError(`An unfinished upload already targets "${relativePath}" in package ${packageId}; finish or terminate it first.`, {
      path: relativePath,
      upload_id: obstacles.pendingUploadId,
    });
  }

  const upload = obstacles.clashingUploadPath;
  if (upload !== null) {
    throw new ConflictError(
      upload.length < relativePath.length
        ? `An unfinished upload in package ${packageId} targets "${upload}", so "${relativePath}" cannot place a file inside it; finish or terminate the upload first.`
        : `An unfinished upload in package ${packageId} targets "${upload}", so "${relativePath}" would have to be both a file and a directory; finish or terminate the upload first.`,
      { path: relativePath, conflicting_path: upload },
    );
  }
}

export function pathTakenError(packageId: string, relativePath: string): ConflictError {
  return new ConflictError(`Package ${packageId} already has a file at "${relativePath}"; files are immutable, so use another path.`, {
    path: relativePath,
  });
}
