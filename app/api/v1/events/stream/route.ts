import { DECIMAL_DIGITS, parseQuery } from '@/server/http/body';
import { apiRoute } from '@/server/http/route';
import { assertCursorWithinLog, EventStreamQuery } from '@/server/registry/event-feed';
import { cursorBeforeLast, listEvents, type EventRecord } from '@/server/registry/events';
import { ForbiddenError, UnauthorizedError, ValidationError } from '@/server/errors';
import { authenticate, requireScope } from '@/server/http/auth';

export const dynamic = 'force-dynamic';

const HEARTBEAT_MS = 15_000;
const BATCH_SIZE = 200;
/** Tells EventSource how long to wait before reconnecting after the stream drops. */
const RETRY_MS = 2_000;
/**
 * Minimum time between two checks of an open stream's credentials. The stream checks them after an event
 * commits (a revocation commits one), after each heartbeat and during a backlog.
 */
const CREDENTIALS_CHECK_MS = 1_000;
/** Bytes of events that a stream queues for a client before it waits for the client to read. */
const QUEUE_BYTES = 256 * 1024;
/** Assumed size of an event before the stream has written one. At 16 KiB, the first query reads at most 16 events. */
const INITIAL_EVENT_BYTES_ESTIMATE = 16 * 1024;

/** Reads Last-Event-ID, which EventSource sends on reconnect; it takes precedence over `since` and `tail`. */
function lastEventId(request: Request): number | undefined {
  const header = request.headers.get('last-event-id');
  if (header === null || header.trim() === '') return undefined;
  const value = DECIMAL_DIGITS.test(header.trim()) ? Number(header.trim()) : NaN;
  if (!Number.isSafeInteger(value)) {
    throw new ValidationError('The Last-Event-ID header must be a non-negative integer event sequence.', [
      { field: 'Last-Event-ID', rule: 'integer', message: `got ${JSON.stringify(header)}` },
    ]);
  }
  return value;
}

function formatEvent(event: EventRecord): string {
  return `id: ${event.sequence}\ndata: ${JSON.stringify(event)}\n\n`;
}

/**
 * Server-Sent Events over the event log, oldest first. The stream starts after Last-Event-ID, else with
 * the last `tail` events that match the filters, else after `since` (0 when none is given). Each message
 * has `id: <sequence>` and the event record as JSON in `data`. Messages carry no `event:` field, so
 * EventSource delivers every type to `onmessage`. A comment line goes out every 15 s so proxies keep the
 * connection open. Filters match as in GET /events: `event_type` is a prefix, `subject_kind` and
 * `subject_id` are exact.
 */
export const GET = apiRoute({ scope: 'read' }, async ({ request, app, log }) => {
  /** Returns whether the request's token or session is still valid and still has the read scope. */
  const credentialsValid = async (): Promise<boolean> => {
    try {
      requireScope(await authenticate(app.db, request, app.settings.ANON_READ), 'read');
      return true;
    } catch (error) {
      if (error instanceof UnauthorizedError || error instanceof ForbiddenError) return false;
      throw error;
    }
  };

  const query = parseQuery(request, EventStreamQuery);
  const fromHeader = lastEventId(request);
  const filters = { subjectKind: query.subject_kind, subjectId: query.subject_id, eventTypePrefix: query.event_type };
  let startAfter: number;
  if (fromHeader === undefined && query.tail !== undefined) {
    startAfter = await cursorBeforeLast(app.db, query.tail, filters);
  } else {
    startAfter = fromHeader ?? query.since ?? 0;
    await assertCursorWithinLog(app.db, startAfter, fromHeader === undefined ? 'since' : 'Last-Event-ID');
  }
  const signal = request.signal;
  const encoder = new TextEncoder();

  // The waiter starts recording commits before the first query, so none falls between query and wait.
  const waiter = app.eventHub.createWaiter('sse');
  const closed = new AbortController();
  const stop = () => closed.abort();
  // The client may have left while the queries above ran, and an aborted signal fires no more events.
  if (signal.aborted) closed.abort();
  else signal.addEventListener('abort', stop, { once: true });
  // At shutdown the stream ends, and EventSource reconnects (to another instance) after RETRY_MS.
  const stopping = app.eventHub.stopSignal;
  if (stopping.aborted) closed.abort();
  else stopping.addEventListener('abort', stop, { once: true });

  // The loop runs beside start(), because a stream calls pull() only once start() has returned.
  let demanded: (() => void) | undefined;
  const signalDemand = () => {
    demanded?.();
    demanded = undefined;
  };
  closed.signal.addEventListener('abort', signalDemand, { once: true });

  const run = async (controller: ReadableStreamDefaultController<Uint8Array>) => {
    let cursor = startAfter;
    let lastWrite = Date.now();
    let credentialsCheckedAt = Date.now();
    // True once an event, a heartbeat or a full batch came after the last check of the credentials.
    let checkOwed = false;
    const write = (text: string) => {
      controller.enqueue(encoder.encode(text));
      lastWrite = Date.now();
    };
    // Average size of the events written so far, which sizes the next query to the free room in the queue.
    // It starts high, so that a log of large events overshoots the queue by little on the first query.
    let averageEventBytes = INITIAL_EVENT_BYTES_ESTIMATE;
    // Writes about as many events as fit in the queue and returns whether more may follow. The events are
    // read in a function of their own, so that they are garbage while the loop waits for demand.
    const writeBatch = async (): Promise<boolean> => {
      const room = Math.max(0, controller.desiredSize ?? QUEUE_BYTES);
      const limit = Math.max(1, Math.min(BATCH_SIZE, Math.floor(room / averageEventBytes)));
      const events = await listEvents(app.db, { since: cursor, limit, ...filters });
      let bytes = 0;
      for (const event of events) {
        const text = formatEvent(event);
        bytes += Buffer.byteLength(text);
        write(text);
        cursor = event.sequence;
      }
      if (events.length > 0) averageEventBytes = Math.max(1, bytes / events.length);
      return events.length === limit;
    };
    // A client that reads slowly gets about QUEUE_BYTES ahead of it, not the whole log.
    // NOTE: the bound is approximate. A query is sized from the average event so far, so events much
    // larger than that average overshoot the queue by up to one query.
    const waitForDemand = async () => {
      while (!closed.signal.aborted && (controller.desiredSize ?? 1) <= 0) await new Promise<void>((resolve) => (demanded = resolve));
    };

    try {
      write(`retry: ${RETRY_MS}\n: stream starts after sequence ${cursor}\n\n`);
      while (!closed.signal.aborted) {
        // A stream outlives the check at its start, so a revoked token or an expired session ends it here.
        // EventSource then reconnects and gets 401.
        if (checkOwed && Date.now() - credentialsCheckedAt >= CREDENTIALS_CHECK_MS) {
          credentialsCheckedAt = Date.now();
          checkOwed = false;
          if (!(await credentialsValid())) {
            log.info({ cursor }, 'ending an event stream because its token was revoked or its session expired');
            write(': the credentials of this stream were revoked or expired\n\n');
            break;
          }
        }

        const more = await writeBatch();
        await waitForDemand();
        if (more) {
          checkOwed = true;
          continue;
        }

        const untilHeartbeat = Math.max(0, HEARTBEAT_MS - (Date.now() - lastWrite));
        // While a check is owed, the wait ends when the check is due, so that a revocation within a second
        // of the last check still ends the stream a second later, not at the next heartbeat.
        const untilCheck = Math.max(0, CREDENTIALS_CHECK_MS - (Date.now() - credentialsCheckedAt));
        const woken = await waiter.next(checkOwed ? Math.min(untilHeartbeat, untilCheck) : untilHeartbeat, closed.signal);
        if (woken) {
          checkOwed = true;
        } else if (!closed.signal.aborted && Date.now() - lastWrite >= HEARTBEAT_MS) {
          write(': heartbeat\n\n');
          checkOwed = true;
        }
      }
    } catch (error) {
      if (!closed.signal.aborted) log.error({ err: error, cursor }, 'event stream failed');
    } finally {
      waiter.close();
      signal.removeEventListener('abort', stop);
      stopping.removeEventListener('abort', stop);
      try {
        controller.close();
      } catch {
        // The client already went away and the stream is closed.
      }
    }
  };

  const stream = new ReadableStream<Uint8Array>(
    {
      start(controller) {
        void run(controller);
      },
      pull() {
        signalDemand();
      },
      cancel() {
        closed.abort();
      },
    },
    new ByteLengthQueuingStrategy({ highWaterMark: QUEUE_BYTES }),
  );

  return new Response(stream, {
    status: 200,
    headers: {
      'Content-Type': 'text/event-stream; charset=utf-8',
      'Cache-Control': 'no-store, no-transform',
      Connection: 'keep-alive',
      'X-Accel-Buffering': 'no',
    },
  });
});
