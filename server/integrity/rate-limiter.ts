import { setTimeout as sleep } from 'node:timers/promises';

/** Read time that a reader may save up while it does other work, such as database queries between objects. */
const MAX_SAVED_MS = 1000;

export interface ReadRateOptions {
  /** The rate while `isBusy` returns true; defaults to `bytesPerSecond`. */
  busyBytesPerSecond?: number;
  /** Called before each wait. While it returns true, `busyBytesPerSecond` applies, for example while uploads run. */
  isBusy?: () => boolean;
}

/**
 * Spreads reads so that they stay at or below `bytesPerSecond`, or `busyBytesPerSecond` while the
 * process is busy. Each call pushes a deadline forward by the time its bytes take at the current rate
 * and waits until then. Time spent elsewhere counts as reading time for at most MAX_SAVED_MS, so a
 * reader that paused cannot burst far above the rate afterwards.
 */
export class ReadRateLimiter {
  readonly #bytesPerSecond: number;
  readonly #busyBytesPerSecond: number;
  readonly #isBusy: () => boolean;
  #readyAt = performance.now();

  constructor(bytesPerSecond: number, options: ReadRateOptions = {}) {
    const busyBytesPerSecond = options.busyBytesPerSecond ?? bytesPerSecond;
    for (const rate of [bytesPerSecond, busyBytesPerSecond]) {
      if (!(rate > 0)) throw new RangeError(`A read rate must be positive, got ${rate} bytes per second.`);
    }
    this.#bytesPerSecond = bytesPerSecond;
    this.#busyBytesPerSecond = busyBytesPerSecond;
    this.#isBusy = options.isBusy ?? (() => false);
  }

  /** Counts `bytes` as read and waits until they fit the rate that applies now. */
  async consume(bytes: number): Promise<void> {
    const rate = this.#isBusy() ? this.#busyBytesPerSecond : this.#bytesPerSecond;
    const now = performance.now();
    this.#readyAt = Math.max(this.#readyAt, now - MAX_SAVED_MS) + (bytes / rate) * 1000;
    if (this.#readyAt > now) await sleep(this.#readyAt - now);
  }
}
