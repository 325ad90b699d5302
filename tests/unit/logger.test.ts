import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Logger } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { createLogger, droppedLogLineCount } from '../../server/logger';

const MAX_BUFFERED_BYTES = 64 * 1024;
const LINE_COUNT = 20_000;
/** The delay of the dropped-lines report in these tests, shorter than the server's 5 s. */
const REPORT_DELAY_MS = 200;

let directory: string | undefined;

afterEach(() => {
  if (directory) fs.rmSync(directory, { recursive: true, force: true });
});

/** Reads everything the non-blocking fd contains now; returns an empty string when it contains nothing. */
function readAvailable(fd: number): string {
  const buffer = Buffer.alloc(1024 * 1024);
  let text = '';
  for (;;) {
    try {
      const read = fs.readSync(fd, buffer);
      if (read === 0) return text;
      text += buffer.subarray(0, read).toString();
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'EAGAIN') return text;
      throw error;
    }
  }
}

/** Opens a FIFO in a new temporary directory: a reader that does not block and a blocking writer. */
function openFifo(): { reader: number; writer: number } {
  directory = fs.mkdtempSync(path.join(os.tmpdir(), 'logger-'));
  const fifo = path.join(directory, 'log');
  execFileSync('mkfifo', [fifo]);
  const reader = fs.openSync(fifo, fs.constants.O_RDONLY | fs.constants.O_NONBLOCK);
  return { reader, writer: fs.openSync(fifo, fs.constants.O_WRONLY) };
}

/** Logs `count` lines of about 300 bytes, letting the asynchronous writer run as an event loop would. */
async function logLines(logger: Logger, count: number): Promise<void> {
  const padding = 'x'.repeat(200);
  for (let index = 0; index < count; index += 1) {
    logger.info({ index, padding }, 'line');
    if (index % 100 === 0) await sleep(0);
  }
}

describe('createLogger', () => {
  it('bounds the lines waiting for a blocked output', async () => {
    // The reader does not read until every line was logged, so the pipe fills and the writer blocks.
    const { reader, writer } = openFifo();
    const droppedBefore = droppedLogLineCount();
    // The short report delay lets this test wait for its report, so that no timer of this logger
    // fires after the FIFO is closed, when a later test may have opened a file under the same fd.
    const logger = createLogger('info', writer, MAX_BUFFERED_BYTES, REPORT_DELAY_MS);
    await logLines(logger, LINE_COUNT);
    const dropped = droppedLogLineCount() - droppedBefore;
    expect(dropped).toBeGreaterThan(0);

    let received = '';
    const isReport = (line: string) => line.includes('"dropped_lines"');
    const loggedLines = () => received.split('\n').filter((line) => line !== '' && !isReport(line));
    for (let waited = 0; (loggedLines().length < LINE_COUNT - dropped || !received.includes('"dropped_lines"')) && waited < 10_000; waited += 10) {
      received += readAvailable(reader);
      await sleep(10);
    }
    const lines = loggedLines();
    expect(received.split('\n').filter(isReport)).toHaveLength(1);
    expect(lines.length + dropped).toBe(LINE_COUNT);
    // What arrived is what was buffered, what the pipe held (64 KiB by default on Linux) and the write in
    // flight when the pipe filled (sonic-boom writes at most 16 KiB at once).
    const lineBytes = Buffer.byteLength(lines[0]) + 1;
    expect(lines.length * lineBytes).toBeLessThan(MAX_BUFFERED_BYTES + 96 * 1024);
    expect(JSON.parse(lines[0])).toMatchObject({ index: 0, msg: 'line', service: 'artifact-store' });
    fs.closeSync(reader);
    fs.closeSync(writer);
  });

  it('reports every dropped line after a long stall', async () => {
    const { reader, writer } = openFifo();
    const droppedBefore = droppedLogLineCount();
    const logger = createLogger('info', writer, MAX_BUFFERED_BYTES, REPORT_DELAY_MS);
    await logLines(logger, 5_000);
    const dropped = droppedLogLineCount() - droppedBefore;
    expect(dropped).toBeGreaterThan(0);

    // The output stays blocked past the first reports, so they are dropped too, and not counted.
    await sleep(3 * REPORT_DELAY_MS);
    expect(droppedLogLineCount() - droppedBefore).toBe(dropped);

    let received = '';
    for (let waited = 0; !received.includes('"dropped_lines"') && waited < 10_000; waited += 20) {
      received += readAvailable(reader);
      await sleep(20);
    }
    const reports = received
      .split('\n')
      .filter((line) => line.includes('"dropped_lines"'))
      .map((line) => JSON.parse(line) as { dropped_lines: number; level: number });
    expect(reports.map((report) => report.dropped_lines)).toEqual([dropped]);
    expect(reports[0].level).toBe(40);
    fs.closeSync(reader);
    fs.closeSync(writer);
  });

  it('names errors by their class name', async () => {
    directory = fs.mkdtempSync(path.join(os.tmpdir(), 'logger-'));
    const file = path.join(directory, 'log');
    const fd = fs.openSync(file, 'w');
    const logger = createLogger('info', fd, MAX_BUFFERED_BYTES);
    // A minifier renames a class, as the production build does, while its name field stays.
    const Minified = class e extends Error {
      override name = 'StorageUnavailableError';
    };
    // node-postgres sets name to the protocol message's name.
    const Database = class DatabaseError extends Error {
      override name = 'error';
    };
    logger.error({ err: new Minified('gone') }, 'first');
    logger.error({ err: new Database('failed') }, 'second');
    logger.error({ err: new TypeError('wrong') }, 'third');
    const types = () =>
      fs
        .readFileSync(file, 'utf8')
        .split('\n')
        .filter((line) => line !== '')
        .map((line) => JSON.parse(line).err.type);
    await expect.poll(types, { timeout: 5_000 }).toEqual(['StorageUnavailableError', 'DatabaseError', 'TypeError']);
    fs.closeSync(fd);
  });
});
