'use client';

import Link from 'next/link';
import { usePathname, useRouter, useSearchParams } from 'next/navigation';
import { Suspense, useEffect, useState, type FormEvent } from 'react';
import { useQueryClient } from '@tanstack/react-query';
import { API, errorMessage, formatTime, retryAfterSeconds, toApiError, type EventRecord } from '../../_components/api';
import { SESSION_KEY } from '../../_components/session';

/** Events kept on screen; older ones drop off the bottom. */
const MAX_EVENTS = 500;

/** Returns the package an event belongs to: its subject, or the package_id in its payload (file events). */
function packageOf(event: EventRecord): string | null {
  if (event.subject_kind === 'package') return event.subject_id;
  const payload = event.payload as { package_id?: unknown } | null;
  return payload && typeof payload.package_id === 'string' ? payload.package_id : null;
}

/** State of the page's event stream: open, being retried by the browser, or stopped with a reason. */
type Connection =
  | { state: 'connecting' | 'live' | 'reconnecting' }
  | { state: 'stopped'; reason: string; retryInSeconds: number | null };

/** Maximum wait before a stopped stream is opened again, also when Retry-After requests a longer one. */
const MAX_RETRY_SECONDS = 60;

function EventTail() {
  const router = useRouter();
  const pathname = usePathname();
  const params = useSearchParams();
  const queryClient = useQueryClient();
  const eventType = params.get('event_type') ?? '';
  const packageId = params.get('package') ?? '';
  const [draft, setDraft] = useState({ event_type: eventType, package: packageId });
  const [events, setEvents] = useState<EventRecord[]>([]);
  const [connection, setConnection] = useState<Connection>({ state: 'connecting' });
  const [notice, setNotice] = useState<string | null>(null);

  useEffect(() => {
    setEvents([]);
    setNotice(null);
    setConnection({ state: 'connecting' });
    const filters = new URLSearchParams();
    if (eventType) filters.set('event_type', eventType);
    if (packageId) filters.set('subject_id', packageId);
    let source: EventSource | undefined;
    let lastSequence: number | undefined;
    let retry: ReturnType<typeof setTimeout> | undefined;
    let failures = 0;
    let closed = false;

    const streamUrl = () => {
      const query = new URLSearchParams(filters);
      // The first stream starts with the latest events; a stream opened again continues after the last one shown.
      if (lastSequence === undefined) query.set('tail', String(MAX_EVENTS));
      else query.set('since', String(lastSequence));
      return `${API}/events/stream?${query}`;
    };

    const open = () => {
      const url = streamUrl();
      // While the stream is open, EventSource reconnects by itself after a network failure and sends
      // Last-Event-ID, so no event is lost or repeated.
      source = new EventSource(url);
      source.onopen = () => {
        failures = 0;
        setConnection({ state: 'live' });
      };
      source.onmessage = (message: MessageEvent<string>) => {
        const event = JSON.parse(message.data) as EventRecord;
        lastSequence = event.sequence;
        setEvents((current) => [event, ...current].slice(0, MAX_EVENTS));
      };
      source.onerror = () => {
        if (source?.readyState !== EventSource.CLOSED) {
          setConnection({ state: 'reconnecting' });
          return;
        }
        // EventSource gives up for good on a response other than 200 and does not say which, so its last
        // request, with the Last-Event-ID it sent, goes out once more to read the status and the problem.
        source.close();
        void diagnose(url);
      };
    };

    // Each failure in a row doubles the wait, from 1 s up to MAX_RETRY_SECONDS, and a longer Retry-After wins.
    const retryLater = (reason: string, retryAfter: number | null = null) => {
      failures += 1;
      const backoff = Math.min(MAX_RETRY_SECONDS, 2 ** (failures - 1));
      const seconds = Math.min(MAX_RETRY_SECONDS, Math.max(backoff, retryAfter ?? 0));
      setConnection({ state: 'stopped', reason, retryInSeconds: seconds });
      retry = setTimeout(open, seconds * 1000);
    };

    const diagnose = async (url: string) => {
      const request = new AbortController();
      const headers: Record<string, string> = { Accept: 'text/event-stream' };
      if (lastSequence !== undefined) headers['Last-Event-ID'] = String(lastSequence);

      let response: Response;
      try {
        response = await fetch(url, { headers, credentials: 'same-origin', signal: request.signal });
      } catch (error) {
        if (!closed) retryLater(`The server cannot be reached (${errorMessage(error)}).`);
        return;
      }
      if (closed) return request.abort();

      if (response.ok) {
        // This response is dropped either way, and EventSource opens its own.
        request.abort();
        const contentType = response.headers.get('content-type') ?? 'none';
        if (!contentType.toLowerCase().startsWith('text/event-stream')) {
          return retryLater(`The server sent Content-Type ${contentType} instead of an event stream; a proxy may be answering in its place.`);
        }
        return retryLater('The event stream was interrupted.');
      }

      const problem = await toApiError(response);
      if (closed) return;
      if (response.status === 401) {
        setConnection({ state: 'stopped', reason: errorMessage(problem), retryInSeconds: null });
        // The session check then fails as well and sends the operator to the sign-in page.
        void queryClient.invalidateQueries({ queryKey: SESSION_KEY });
        return;
      }

      const logEnd = problem.problem?.last_sequence;
      if (response.status === 409 && typeof logEnd === 'number') {
        setNotice(
          `The event log now ends at sequence ${logEnd}, before the last event shown (${lastSequence}). ` +
            'Its database was probably restored from an older backup. The list shows the log as it is now.',
        );
        setEvents([]);
        lastSequence = undefined;
        open();
        return;
      }

      if (response.status >= 500 || response.status === 429) {
        return retryLater(errorMessage(problem), retryAfterSeconds(response));
      }
      // Any other rejection (an invalid filter, a token without the read scope) needs the operator to act.
      setConnection({ state: 'stopped', reason: errorMessage(problem), retryInSeconds: null });
    };

    open();
    return () => {
      closed = true;
      clearTimeout(retry);
      source?.close();
    };
  }, [eventType, packageId, queryClient]);

  const apply = (event: FormEvent) => {
    event.preventDefault();
    const next = new URLSearchParams();
    if (draft.event_type.trim()) next.set('event_type', draft.event_type.trim());
    if (draft.package.trim()) next.set('package', draft.package.trim());
    router.replace(next.size > 0 ? `${pathname}?${next}` : pathname);
  };

  return (
    <section>
      <h1>Events</h1>
      <form className="filters" onSubmit={apply}>
        <label>
          Type prefix
          <input value={draft.event_type} onChange={(event) => setDraft({ ...draft, event_type: event.target.value })} data-testid="event-type-filter" />
        </label>
        <label>
          Package id
          <input value={draft.package} onChange={(event) => setDraft({ ...draft, package: event.target.value })} data-testid="event-package-filter" />
        </label>
        <button type="submit">Apply</button>
        <span className={`badge badge-${connection.state}`} data-testid="event-connection">
          {connection.state}
        </span>
      </form>
      {connection.state === 'stopped' && (
        <p className="error" role="alert" data-testid="event-stream-stopped">
          The event stream stopped: {connection.reason}
          {connection.retryInSeconds !== null && ` Trying again in ${connection.retryInSeconds} s.`}
        </p>
      )}
      {notice && (
        <p className="status" data-testid="event-stream-notice">
          {notice}
        </p>
      )}
      {events.length === 0 && <p className="status">No events yet.</p>}
      <table className="grid" data-testid="event-table">
        <thead>
          <tr>
            <th className="num">#</th>
            <th>Time</th>
            <th>Type</th>
            <th>Subject</th>
            <th>Actor</th>
          </tr>
        </thead>
        <tbody>
          {events.map((event) => {
            const pkg = packageOf(event);
            return (
              <tr key={event.sequence} data-testid="event-row" data-event-type={event.event_type} data-subject-id={event.subject_id}>
                <td className="num mono">{event.sequence}</td>
                <td>{formatTime(event.created_at)}</td>
                <td>{event.event_type}</td>
                <td className="mono">
                  {event.subject_kind} {pkg ? <Link href={`/packages/${pkg}`}>{event.subject_id}</Link> : event.subject_id}
                </td>
                <td>{event.actor}</td>
              </tr>
            );
          })}
        </tbody>
      </table>
    </section>
  );
}

export default function EventsPage() {
  return (
    <Suspense fallback={<p className="status">Loading…</p>}>
      <EventTail />
    </Suspense>
  );
}
