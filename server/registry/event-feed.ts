import { z } from 'zod';
import type { Executor } from '@/db/client';
import type { AppContext } from '../app-context';
import { ConflictError } from '../errors';
import { queryInteger } from '../http/body';
import { headSequence, listEvents, type EventRecord, type ListEventsOptions } from './events';

const EventFilters = {
  subject_kind: z.string().min(1).max(64).optional(),
  subject_id: z.string().min(1).max(256).optional(),
  event_type: z.string().min(1).max(128).optional().meta({ description: 'An event type prefix, such as `retention.`.' }),
};

/** GET /events query. */
export const EventsQuery = z
  .object({
    since: queryInteger(0, Number.MAX_SAFE_INTEGER, 0),
    limit: queryInteger(1, 500, 100),
    wait_seconds: queryInteger(0, 30, 0),
    ...EventFilters,
  })
  .strict();

/** The maximum of `tail`, the same as the maximum `limit` of GET /events. */
export const MAX_TAIL_EVENTS = 500;

/** GET /events/stream query; Last-Event-ID, when sent, takes precedence over `since` and `tail`. */
export const EventStreamQuery = z
  .object({
    since: queryInteger(0, Number.MAX_SAFE_INTEGER),
    tail: queryInteger(1, MAX_TAIL_EVENTS).meta({ description: 'Start with the last `tail` events that match the filters. Cannot be combined with `since` (400).' }),
    ...EventFilters,
  })
  .strict()
  .refine((query) => query.since === undefined || query.tail === undefined, {
    message: 'since and tail cannot be combined: since starts after a sequence, tail with the last events',
    path: ['tail'],
  });

/**
 * Returns the events after `since`, waiting up to `waitSeconds` for the first one to commit when there
 * are none yet. The waiter is registered before the first query, so an event that commits between the
 * query and the wait still wakes it; with filters, unrelated events only cause another query. The wait
 * also ends when `requestSignal` aborts or the process begins to shut down.
 */
export async function pollEvents(
  app: AppContext,
  options: ListEventsOptions & { waitSeconds: number },
  requestSignal?: AbortSignal,
): Promise<EventRecord[]> {
  // One controller for both signals. AbortSignal.any would tie each poll's signal to the hub's signal,
  // which lives as long as the process.
  const ended = new AbortController();
  const end = () => ended.abort();
  const stopping = app.eventHub.stopSignal;
  for (const source of [requestSignal, stopping]) {
    if (source?.aborted) end();
    else source?.addEventListener('abort', end, { once: true });
  }
  const signal = ended.signal;
  const deadline = Date.now() + options.waitSeconds * 1000;
  const waiter = app.eventHub.createWaiter('long_poll');
  try {
    for (let first = true; ; first = false) {
      const events = await listEvents(app.db, options);
      // A page with events shows that `since` lies within the log, so only an empty first page needs the head.
      if (first && events.length === 0) await assertCursorWithinLog(app.db, options.since, 'since');
      const remaining = deadline - Date.now();
      if (events.length > 0 || remaining <= 0 || signal.aborted) return events;
      const woken = await waiter.next(remaining, signal);
      if (!woken) return listEvents(app.db, options);
    }
  } finally {
    waiter.close();
    requestSignal?.removeEventListener('abort', end);
    stopping.removeEventListener('abort', end);
  }
}

/**
 * Throws 409 when `cursor` is beyond the last event of the log. No cursor that this log returned can be,
 * so the client's cursor comes from a database restored from an older backup, or from another registry.
 * Waiting would deliver nothing until the log grew past the cursor, and then skip the events before it.
 */
export async function assertCursorWithinLog(db: Executor, cursor: number, field: string): Promise<void> {
  const last = await headSequence(db);
  if (cursor <= last) return;
  throw new ConflictError(
    `${field} ${cursor} is beyond the last event of this log, ${last}. The event log may have been restored from an older backup, or the cursor belongs to another registry: read again from since=${last} for new events only, or since=0 for the whole log.`,
    { last_sequence: last },
  );
}
