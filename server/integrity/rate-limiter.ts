import { setTimeout as sleep } from 'node:timers/promises';

/**
 * Spreads reads so that their average rate since the limiter was created stays at or below
 * `bytesPerSecond`: each call waits until the bytes consumed so far are within budget.
 */
export class ReadRateLimiter {
  readonly #bytesPerSecond: number;
  readonly #startedAt = performance.now();
  #bytes = 0;

  constructor(bytesPerSecond: number) {
    if (!(bytesPerSecond > 0)) throw new RangeError(`A read rate must be positive, got ${bytesPerSecond} bytes per second.`);
    this.#bytesPerSecond = bytesPerSecond;
  }

  /** Counts `bytes` as read and waits while the running average is above the rate. */
  async consume(bytes: number): Promise<void> {
    this.#bytes += bytes;
    const dueMs = (this.#bytes / this.#bytesPerSecond) * 1000;
    const elapsedMs = performance.now() - this.#startedAt;
    if (dueMs > elapsedMs) await sleep(dueMs - elapsedMs);
  }
}
