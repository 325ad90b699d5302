import crypto from 'node:crypto';
import { Server } from '@tus/server';
import type { AppContext } from '../app-context';
import { isDomainError } from '../errors';
import type { Backend } from '../storage/backend';
import type { FilesystemBackend } from '../storage/filesystem';
import { InProcessLocker, PostgresLocker } from './locker';
import { createUploadRecord } from './records';
import { currentUploadRequest } from './request-context';
import { RegistryFileStore, stagingError } from './store';

export const UPLOADS_PATH = '/api/v1/uploads';

export interface UploadService {
  server: Server;
  store: RegistryFileStore;
}

const globalForTus = globalThis as typeof globalThis & { artifactStoreTus?: UploadService };

/** Upload ids are 128 random bits as 32 lowercase hex characters. */
export const UPLOAD_ID_PATTERN = /^[0-9a-f]{32}$/;

/**
 * Returns the process's @tus/server, creating it on first use. Staging lives in the directory that
 * uploadStagingDirectory returns. Locks are PostgreSQL advisory locks on PostgreSQL, because several
 * processes may serve one database, and in-process locks on PGlite.
 */
export function getUploadService(app: AppContext): UploadService {
  if (globalForTus.artifactStoreTus) return globalForTus.artifactStoreTus;
  const backend = app.primaryBackend;

  const expirationSeconds = app.settings.UPLOAD_EXPIRY_SECONDS;
  const store = new RegistryFileStore({ db: app.db, backend, directory: uploadStagingDirectory(app), expirationSeconds });
  const locker =
    app.connection.kind === 'postgres' && app.settings.DATABASE_URL ? new PostgresLocker(app.settings.DATABASE_URL, app.log) : new InProcessLocker();

  const server = new Server({
    path: UPLOADS_PATH,
    datastore: store,
    locker,
    respectForwardedHeaders: app.settings.TRUST_FORWARDED_HEADERS,
    maxSize: app.settings.MAX_FILE_SIZE_BYTES,
    namingFunction: () => crypto.randomBytes(16).toString('hex'),
    onUploadCreate: async (_request, upload) => {
      const context = currentUploadRequest();
      if (!context.creation) throw new Error('Upload creation reached @tus/server without a parsed target.');
      const createdAt = upload.creation_date ? Date.parse(upload.creation_date) : Date.now();
      await createUploadRecord(app.db, {
        id: upload.id,
        packageId: context.creation.packageId,
        relativePath: context.creation.relativePath,
        mediaType: context.creation.mediaType,
        uploadLength: upload.size ?? null,
        actor: context.principal.name,
        expiresAt: new Date(createdAt + expirationSeconds * 1000),
      });
      context.log.info({ upload_id: upload.id, package_id: context.creation.packageId, upload_length: upload.size ?? null }, 'upload created');
      return {};
    },
    onUploadFinish: async (_request, upload) => {
      await store.completeIfUnfinished(upload.id);
      return {};
    },
    onResponseError: (_request, error) => {
      // Errors that carry a tus status (including @tus/utils' Error subclasses such as MaxFileExceededError)
      // keep that status; the route turns the library's response into problem+json.
      if (!(error instanceof Error) || typeof (error as { status_code?: unknown }).status_code === 'number') return undefined;
      // Staging write errors are mapped here rather than in the store, because @tus/server runs the store's
      // write inside a pipeline of its own, which may report the raw error of a body longer than one chunk.
      const mapped = stagingError(error);
      // Errors of our own code are kept for the route, which maps them to problem+json with their fields.
      currentUploadRequest().error = mapped;
      return { status_code: isDomainError(mapped) ? mapped.status : 500, body: '' };
    },
  });

  globalForTus.artifactStoreTus = { server, store };
  return globalForTus.artifactStoreTus;
}

/**
 * Returns the staging directory of unfinished uploads. For the filesystem backend it is the store's
 * uploads/, on the same file system, so a finished upload is renamed into the store. For a backend
 * without one (S3) it is DATA_DIR/uploads, and a finished upload is streamed into the backend.
 */
export function uploadStagingDirectory(app: AppContext): string {
  const backend = app.primaryBackend;
  // instanceof fails here because Next.js bundles the instrumentation hook, which creates the backend, separately.
  return isFilesystemBackend(backend) ? backend.uploadsDirectory : app.settings.uploadStagingDir;
}

/** Returns true for a backend with a tus staging directory on its own file system. */
export function isFilesystemBackend(backend: Backend): backend is FilesystemBackend {
  return backend.kind === 'fs' && typeof (backend as Partial<FilesystemBackend>).uploadsDirectory === 'string';
}
