import fs from 'node:fs/promises';
import path from 'node:path';
import { DomainError } from '../server/errors';
import { normalizeRelativePath } from '../server/registry/relative-path';
import { CommandError } from './errors';

const UTF8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

export interface LocalFile {
  /** The package path: `/`-separated and NFC-normalized, as the server stores it. */
  relativePath: string;
  absolutePath: string;
  sizeBytes: number;
  /** Modification time in milliseconds since the epoch, to notice a file changed between runs. */
  mtimeMs: number;
}

/**
 * Lists every regular file below `root`, sorted by package path. Entries that cannot become package
 * files are collected first: symbolic links, sockets, FIFOs, devices, names that are not valid
 * UTF-8 or break the package path rules, and names equal to another after NFC normalization. They are then reported together
 * in one CommandError, so a push either sends the whole tree or nothing.
 */
export async function listLocalFiles(root: string): Promise<LocalFile[]> {
  const found: LocalFile[] = [];
  const problems: string[] = [];
  const seen = new Map<string, string>();

  const walk = async (directory: string, prefix: string): Promise<void> => {
    // Raw names: decoding them as strings would replace invalid UTF-8 with U+FFFD, a name no file has.
    const entries = await fs.readdir(directory, { withFileTypes: true, encoding: 'buffer' });
    entries.sort((a, b) => Buffer.compare(a.name, b.name));
    for (const entry of entries) {
      let name: string;
      try {
        name = UTF8.decode(entry.name);
      } catch {
        const lossyName = entry.name.toString('utf8');
        problems.push(`${JSON.stringify(prefix ? `${prefix}/${lossyName}` : lossyName)}: name is not valid UTF-8 (package paths are UTF-8 text; rename it)`);
        continue;
      }
      const absolutePath = path.join(directory, name);
      const localPath = prefix ? `${prefix}/${name}` : name;
      if (entry.isSymbolicLink()) {
        problems.push(`${localPath}: symbolic link (packages hold regular files only; copy the target in its place)`);
        continue;
      }
      if (entry.isDirectory()) {
        await walk(absolutePath, localPath);
        continue;
      }
      if (!entry.isFile()) {
        problems.push(`${localPath}: not a regular file (socket, FIFO or device)`);
        continue;
      }
      let relativePath: string;
      try {
        relativePath = normalizeRelativePath(localPath);
      } catch (error) {
        if (!(error instanceof DomainError)) throw error;
        problems.push(`${JSON.stringify(localPath)}: ${error.message}`);
        continue;
      }
      const earlier = seen.get(relativePath);
      if (earlier !== undefined) {
        problems.push(`${localPath}: same package path as ${earlier} after Unicode NFC normalization`);
        continue;
      }
      seen.set(relativePath, localPath);
      const stat = await fs.stat(absolutePath);
      found.push({ relativePath, absolutePath, sizeBytes: stat.size, mtimeMs: stat.mtimeMs });
    }
  };
  await walk(root, '');

  if (problems.length > 0) {
    const count = problems.length === 1 ? '1 entry' : `${problems.length} entries`;
    throw new CommandError(`${count} of ${root} cannot become package files, so nothing was uploaded:\n${problems.map((line) => `  ${line}`).join('\n')}`);
  }
  found.sort((a, b) => Buffer.compare(Buffer.from(a.relativePath), Buffer.from(b.relativePath)));
  return found;
}
