import cliProgress from 'cli-progress';

/** Formats a byte count with binary units, for example 12.5 MiB. */
export function formatBytes(bytes: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit += 1;
  }
  return unit === 0 ? `${Math.round(value)} B` : `${value.toFixed(1)} ${units[unit]}`;
}

function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds)) return '--';
  const whole = Math.round(seconds);
  if (whole < 60) return `${whole}s`;
  if (whole < 3600) return `${Math.floor(whole / 60)}m${String(whole % 60).padStart(2, '0')}s`;
  return `${Math.floor(whole / 3600)}h${String(Math.floor((whole % 3600) / 60)).padStart(2, '0')}m`;
}

/** Progress of a multi-file transfer: bars on a terminal, log lines on stderr otherwise. */
export interface TransferProgress {
  /** Announces a file; `doneBytes` counts bytes already on the other side (a resumed file). */
  startFile(name: string, sizeBytes: number, doneBytes: number): void;
  /** Reports the bytes of the file transferred so far, counted from its start. */
  updateFile(name: string, doneBytes: number): void;
  finishFile(name: string, note: string): void;
  /** Prints a line that is not a progress update, such as a warning or a skipped file. */
  log(message: string): void;
  stop(): void;
}

interface FileState {
  sizeBytes: number;
  doneBytes: number;
  /** Bytes that were already transferred before this run, excluded from the rate. */
  resumedBytes: number;
  startedAt: number;
  bar?: cliProgress.SingleBar;
}

/**
 * Creates the progress display for a transfer of `totalBytes` in `totalFiles` files, of which
 * `alreadyDoneBytes` need no transfer. Bars appear only when `interactive` is true (stdout is a TTY).
 */
export function createTransferProgress(options: { verb: string; totalBytes: number; totalFiles: number; alreadyDoneBytes: number; interactive: boolean }): TransferProgress {
  const files = new Map<string, FileState>();
  const startedAt = Date.now();
  let finishedFiles = 0;
  let overallDone = options.alreadyDoneBytes;
  // Bytes that need no transfer in this run (skipped files and resumed prefixes), excluded from the rate.
  let overallResumed = options.alreadyDoneBytes;

  const rateOf = (transferred: number, since: number) => transferred / Math.max((Date.now() - since) / 1000, 0.001);
  const statsOf = (done: number, total: number, transferred: number, since: number) => {
    const rate = rateOf(transferred, since);
    let left = '--';
    if (done >= total) left = '0s';
    else if (rate > 0) left = formatDuration((total - done) / rate);
    return { done: formatBytes(done), size: formatBytes(total), rate: `${formatBytes(rate)}/s`, left };
  };

  const multibar = options.interactive
    ? new cliProgress.MultiBar(
        {
          // cli-progress fills {bar} and {percentage}; its own {total} and {value} are raw byte counts, so the
          // payload carries formatted values under other names.
          format: '{name} |{bar}| {percentage}% {done}/{size} {rate} {left} left',
          // A visible cursor survives Ctrl-C; cli-progress restores a hidden one only through its own SIGINT handler.
          hideCursor: false,
          clearOnComplete: false,
          stopOnComplete: false,
          stream: process.stdout,
          fps: 5,
          autopadding: true,
        },
        cliProgress.Presets.shades_classic,
      )
    : undefined;
  const overallName = `${options.verb} ${options.totalFiles} files`;
  const overallBar = multibar?.create(Math.max(options.totalBytes, 1), overallDone, {
    name: overallName,
    ...statsOf(overallDone, options.totalBytes, 0, startedAt),
  });

  const refreshOverall = () => {
    overallBar?.update(overallDone, { name: `${overallName} (${finishedFiles} done)`, ...statsOf(overallDone, options.totalBytes, overallDone - overallResumed, startedAt) });
  };

  return {
    startFile(name, sizeBytes, doneBytes) {
      const state: FileState = { sizeBytes, doneBytes, resumedBytes: doneBytes, startedAt: Date.now() };
      files.set(name, state);
      overallDone += doneBytes;
      overallResumed += doneBytes;
      if (multibar) {
        state.bar = multibar.create(Math.max(sizeBytes, 1), doneBytes, { name, ...statsOf(doneBytes, sizeBytes, 0, state.startedAt) });
      } else if (sizeBytes === 0 || doneBytes < sizeBytes) {
        // A file that is complete already (present, or fully downloaded before a kill) gets only its finish line.
        const resumed = doneBytes > 0 ? `, resuming at ${formatBytes(doneBytes)}` : '';
        process.stderr.write(`${options.verb} ${name} (${formatBytes(sizeBytes)}${resumed})\n`);
      }
    },
    updateFile(name, doneBytes) {
      const state = files.get(name);
      if (!state) return;
      overallDone += doneBytes - state.doneBytes;
      state.doneBytes = doneBytes;
      state.bar?.update(doneBytes, { name, ...statsOf(doneBytes, state.sizeBytes, doneBytes - state.resumedBytes, state.startedAt) });
      refreshOverall();
    },
    finishFile(name, note) {
      const state = files.get(name);
      finishedFiles += 1;
      if (state) {
        overallDone += state.sizeBytes - state.doneBytes;
        state.doneBytes = state.sizeBytes;
      }
      if (multibar && state?.bar) {
        state.bar.update(state.sizeBytes, { name: `${name} ${note}`, ...statsOf(state.sizeBytes, state.sizeBytes, state.sizeBytes - state.resumedBytes, state.startedAt) });
        state.bar.stop();
        multibar.remove(state.bar);
        multibar.log(`${name}: ${note}\n`);
      } else if (!multibar) {
        const seconds = state ? (Date.now() - state.startedAt) / 1000 : 0;
        const transferred = state ? state.sizeBytes - state.resumedBytes : 0;
        const rate = state && transferred > 0 ? ` at ${formatBytes(rateOf(transferred, state.startedAt))}/s` : '';
        const overall = statsOf(overallDone, options.totalBytes, overallDone - overallResumed, startedAt);
        process.stderr.write(
          `${name}: ${note} in ${seconds.toFixed(1)}s${rate}; overall ${finishedFiles}/${options.totalFiles} files, ${overall.done}/${overall.size}, ${overall.left} left\n`,
        );
      }
      refreshOverall();
    },
    log(message) {
      if (multibar) multibar.log(`${message}\n`);
      else process.stderr.write(`${message}\n`);
    },
    stop() {
      refreshOverall();
      multibar?.stop();
    },
  };
}
