import { EventEmitter, setMaxListeners } from 'node:events';
import type { Logger } from 'pino';
import type { DatabaseConnection } from '@/db/client';
import { EVENTS_CHANNEL } from './events';

/**
 * Wakes waiting long polls and SSE streams when an event commits. It listens on the database's NOTIFY
 * channel, so events committed by other processes wake this one too; no polling loop is involved.
 */
export interface EventWaiter {
  /** Resolves with true when an event committed since the last call (or creation), false on timeout or abort. */
  next(timeoutMs: number, signal?: AbortSignal): Promise<boolean>;
  close(): void;
}

/** Kind of request a waiter serves: a long poll of GET /events or an SSE stream of GET /events/stream. */
export type EventWaiterKind = 'long_poll' | 'sse';

export class EventHub {
  private readonly emitter = new EventEmitter();
  private readonly openWaiters: Record<EventWaiterKind, number> = { long_poll: 0, sse: 0 };
  private readonly stopping = new AbortController();

  private constructor(private readonly log: Logger) {
    this.emitter.setMaxListeners(0);
    // Every waiting long poll and stream listens on the stop signal, so Node.js's warning past 10 listeners does not apply.
    setMaxListeners(0, this.stopping.signal);
  }

  static async start(connection: DatabaseConnection, log: Logger): Promise<EventHub> {
    const hub = new EventHub(log);
    await connection.listen(EVENTS_CHANNEL, (payload) => hub.notify(Number(payload)));
    return hub;
  }

  get waiterCount(): number {
    return this.emitter.listenerCount('event');
  }

  /** Waiters created and not yet closed, by kind. */
  get waiterCountsByKind(): Readonly<Record<EventWaiterKind, number>> {
    return { ...this.openWaiters };
  }

  private notify(sequence: number): void {
    if (!Number.isSafeInteger(sequence)) {
      this.log.warn({ payload: sequence }, 'ignored a malformed event notification');
      return;
    }
    this.emitter.emit('event', sequence);
  }

  /**
   * Starts recording commits so none is missed between a query and the wait that follows it: create the
   * waiter, query the log, and call `next` only when the query found nothing new.
   */
  createWaiter(kind: EventWaiterKind): EventWaiter {
    let pending = false;
    let closed = false;
    let wake: (() => void) | undefined;
    const onEvent = () => {
      pending = true;
      wake?.();
    };
    this.emitter.on('event', onEvent);
    this.openWaiters[kind] += 1;

    return {
      next: (timeoutMs, signal) =>
        new Promise<boolean>((resolve) => {
          if (pending) {
            pending = false;
            resolve(true);
            return;
          }
          // A signal that has already aborted fires no more abort events.
          if (signal?.aborted) {
            resolve(false);
            return;
          }
          const finish = (result: boolean) => {
            clearTimeout(timer);
            wake = undefined;
            signal?.removeEventListener('abort', onAbort);
            pending = false;
            resolve(result);
          };
          const onAbort = () => finish(false);
          const timer = setTimeout(() => finish(false), timeoutMs);
          wake = () => finish(true);
          signal?.addEventListener('abort', onAbort, { once: true });
        }),
      close: () => {
        this.emitter.off('event', onEvent);
        wake = undefined;
        if (closed) return;
        closed = true;
        this.openWaiters[kind] -= 1;
      },
    };
  }

  /**
   * Aborts when the process begins to shut down. Long polls then return what they have and SSE streams
   * end, so that their clients reconnect to another instance at once instead of being cut off when the
   * shutdown's grace period runs out.
   */
  get stopSignal(): AbortSignal {
    return this.stopping.signal;
  }

  /** Aborts stopSignal; called once on SIGTERM or SIGINT, as the HTTP server stops accepting connections. */
  stop(): void {
    this.stopping.abort();
  }

  /** Subscribes to every committed sequence number; returns the function that unsubscribes. */
  subscribe(handler: (sequence: number) => void): () => void {
    this.emitter.on('event', handler);
    return () => this.emitter.off('event', handler);
  }
}
