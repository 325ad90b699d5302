import pino from 'pino';
import { describe, expect, it } from 'vitest';
import type { DatabaseConnection } from '@/db/client';
import { EventHub } from '@/server/registry/event-hub';

/** Starts a hub whose notifications come from `notify`, as the LISTEN connection would deliver them. */
async function startHub(): Promise<{ hub: EventHub; notify: (payload: string) => void }> {
  let handler: ((payload: string) => void) | undefined;
  const connection = {
    listen: async (_channel: string, onNotification: (payload: string) => void) => {
      handler = onNotification;
      return async () => undefined;
    },
  } as unknown as DatabaseConnection;
  const hub = await EventHub.start(connection, pino({ level: 'silent' }));
  return { hub, notify: (payload) => handler!(payload) };
}

describe('event waiter', () => {
  // A signal that aborted while the caller queried fires no abort event, so the wait would last until its timeout.
  it('returns at once for an aborted signal', async () => {
    const { hub } = await startHub();
    const waiter = hub.createWaiter('sse');
    const startedAt = performance.now();
    expect(await waiter.next(60_000, AbortSignal.abort())).toBe(false);
    expect(performance.now() - startedAt).toBeLessThan(1_000);
    waiter.close();
  });

  it('reports a commit recorded before the wait', async () => {
    const { hub, notify } = await startHub();
    const waiter = hub.createWaiter('long_poll');
    notify('7');
    expect(await waiter.next(60_000, AbortSignal.abort())).toBe(true);
    waiter.close();
  });

  it('ends the wait when the hub stops', async () => {
    const { hub } = await startHub();
    const waiter = hub.createWaiter('sse');
    const waiting = waiter.next(60_000, hub.stopSignal);
    hub.stop();
    expect(await waiting).toBe(false);
    expect(hub.stopSignal.aborted).toBe(true);
    waiter.close();
  });
});
