import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterEach, describe, expect, it } from 'vitest';
import { createLogger, droppedLogLineCount } from '../../server/logger';

const MAX_BUFFERED_BYTES = 64 * 1024;
const LINE_COUNT = 20_000;

let directory: string | undefined;

afterEach(() => {
  if (directory) fs.rmSync(directory, { recursive: true, force: true });
});

/** Reads what is in the non-blocking fd now; returns an empty string when nothing is. */
function readAvailable(fd: number): string {
  const buffer = Buffer.alloc(1024 * 1024);
  try {
    return buffer.subarray(0, fs.readSync(fd, buffer)).toString();
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'EAGAIN') return '';
    throw error;
  }
}

describe('createLogger', () => {
  it('bounds the lines waiting for a blocked output', async () => {
    directory = fs.mkdtempSync(path.join(os.tmpdir(), 'logger-'));
    const fifo = path.join(directory, 'log');
    execFileSync('mkfifo', [fifo]);
    // The reader does not read until every line was logged, so the pipe fills and the writer blocks.
    const reader = fs.openSync(fifo, fs.constants.O_RDONLY | fs.constants.O_NONBLOCK);
    const writer = fs.openSync(fifo, fs.constants.O_WRONLY);
    const droppedBefore = droppedLogLineCount();
    const logger = createLogger('info', writer, MAX_BUFFERED_BYTES);
    const padding = 'x'.repeat(200);
    for (let index = 0; index < LINE_COUNT; index += 1) {
      logger.info({ index, padding }, 'line');
      // Let the asynchronous writer run, as a server's event loop would between requests.
      if (index % 100 === 0) await sleep(0);
    }
    const dropped = droppedLogLineCount() - droppedBefore;
    expect(dropped).toBeGreaterThan(0);

    let received = '';
    for (let waited = 0; received.split('\n').length - 1 < LINE_COUNT - dropped && waited < 10_000; waited += 10) {
      received += readAvailable(reader);
      await sleep(10);
    }
    const lines = received.split('\n').filter((line) => line !== '');
    expect(lines.length + dropped).toBe(LINE_COUNT);
    // What arrived is what was buffered, what the pipe held (64 KiB by default on Linux) and the write in
    // flight when the pipe filled (sonic-boom writes at most 16 KiB at once).
    const lineBytes = Buffer.byteLength(lines[0]) + 1;
    expect(lines.length * lineBytes).toBeLessThan(MAX_BUFFERED_BYTES + 96 * 1024);
    expect(JSON.parse(lines[0])).toMatchObject({ index: 0, msg: 'line', service: 'artifact-store' });
    fs.closeSync(reader);
    fs.closeSync(writer);
  });
});
