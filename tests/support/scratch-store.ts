import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { sql } from 'drizzle-orm';
import { FilesystemBackend } from '@/server/storage/filesystem';
import { connectScratchDatabase, type ScratchDatabase } from './database';

/**
 * A store for tests that call the registry's functions without a server: a scratch database with the
 * retention class `test`, and a filesystem backend, both in a new temporary directory.
 */
export interface ScratchStore {
  directory: string;
  database: ScratchDatabase;
  backend: FilesystemBackend;
  /** Closes and drops the database and removes the directory. */
  close(): Promise<void>;
}

/** Opens a ScratchStore in a new temporary directory whose name starts with `prefix`. */
export async function openScratchStore(prefix: string): Promise<ScratchStore> {
  const directory = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  const database = await connectScratchDatabase(directory);
  await database.connection.db.execute(sql`INSERT INTO retention_classes (class_id, deletion_strategy) VALUES ('test', 'delete') ON CONFLICT DO NOTHING`);
  return {
    directory,
    database,
    backend: new FilesystemBackend({ id: 'fs', root: path.join(directory, 'store') }),
    async close() {
      await database.close();
      fs.rmSync(directory, { recursive: true, force: true });
    },
  };
}
