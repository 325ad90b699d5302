import { afterEach, describe, expect, it, vi } from 'vitest';
import { createTransferProgress } from '../../cli/progress';

afterEach(() => {
  vi.restoreAllMocks();
});

/** Runs `steps` against a non-interactive progress display and returns the lines it wrote to stderr. */
function captureLines(steps: (progress: ReturnType<typeof createTransferProgress>) => void): string[] {
  const written: string[] = [];
  vi.spyOn(process.stderr, 'write').mockImplementation((chunk: string | Uint8Array) => {
    written.push(String(chunk));
    return true;
  });
  const progress = createTransferProgress({ verb: 'download', totalBytes: 100, totalFiles: 2, alreadyDoneBytes: 0, interactive: false });
  steps(progress);
  progress.stop();
  return written.join('').trim().split('\n');
}

describe('transfer progress', () => {
  it('counts present and resumed bytes', () => {
    const lines = captureLines((progress) => {
      progress.startFile('present.bin', 60, 60);
      progress.finishFile('present.bin', 'already present and verified');
      progress.startFile('resumed.bin', 40, 10);
      progress.updateFile('resumed.bin', 40);
      progress.finishFile('resumed.bin', 'resumed and verified');
    });

    expect(lines).toHaveLength(3);
    expect(lines[0]).toMatch(/^present\.bin: already present and verified in \d+\.\ds; overall 1\/2 files, 60 B\/100 B, /);
    expect(lines[0]).not.toContain(' at ');
    expect(lines[1]).toBe('download resumed.bin (40 B, resuming at 10 B)');
    expect(lines[2]).toMatch(/^resumed\.bin: resumed and verified in \d+\.\ds at .+\/s; overall 2\/2 files, 100 B\/100 B, 0s left$/);
  });
});
