import { execFileSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';

const MiB = 1024 * 1024;

/** Writes `sizeBytes` random bytes to `file` in 8 MiB pieces. */
export function writeRandomFile(file: string, sizeBytes: number): void {
  const handle = fs.openSync(file, 'w');
  try {
    for (let written = 0; written < sizeBytes; written += 8 * MiB) fs.writeSync(handle, crypto.randomBytes(Math.min(8 * MiB, sizeBytes - written)));
  } finally {
    fs.closeSync(handle);
  }
}

/** Runs a checksum tool such as sha256sum or b3sum and returns the hex digest it prints first. */
export function toolDigest(tool: string, file: string): string {
  return execFileSync(tool, [file], { encoding: 'utf8' }).split(/\s+/)[0];
}
