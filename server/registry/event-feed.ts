import type { AppContext } from '../app-context';
import { listEvents, type EventRecord, type ListEventsOptions } from './events';

/**
 * Returns the events after `since`, waiting up to `waitSeconds` for the first one to commit when there
 * are none yet. The waiter is registered before the first query, so an event that commits between the
 * query and the wait still wakes it; with filters, unrelated events only cause another query.
 */
export async function pollEvents(
  app: AppContext,
  options: ListEventsOptions & { waitSeconds: number },
  signal?: AbortSignal,
): Promise<EventRecord[]> {
  const deadline = Date.now() + options.waitSeconds * 1000;
  const waiter = app.eventHub.createWaiter('long_poll');
  try {
    for (;;) {
      const events = await listEvents(app.db, options);
      const remaining = deadline - Date.now();
      if (events.length > 0 || remaining <= 0 || signal?.aborted) return events;
      const woken = await waiter.next(remaining, signal);
      if (!woken) return listEvents(app.db, options);
    }
  } finally {
    waiter.close();
  }
}
