'use client';

import Link from 'next/link';
import { usePathname, useRouter, useSearchParams } from 'next/navigation';
import { Suspense, useEffect, useState, type FormEvent } from 'react';
import { formatTime, type EventRecord } from '../../_components/api';

/** Events kept on screen; older ones drop off the bottom. */
const MAX_EVENTS = 500;

/** Returns the package an event belongs to: its subject, or the package_id in its payload (file events). */
function packageOf(event: EventRecord): string | null {
  if (event.subject_kind === 'package') return event.subject_id;
  const payload = event.payload as { package_id?: unknown } | null;
  return payload && typeof payload.package_id === 'string' ? payload.package_id : null;
}

function EventTail() {
  const router = useRouter();
  const pathname = usePathname();
  const params = useSearchParams();
  const eventType = params.get('event_type') ?? '';
  const packageId = params.get('package') ?? '';
  const [draft, setDraft] = useState({ event_type: eventType, package: packageId });
  const [events, setEvents] = useState<EventRecord[]>([]);
  const [connection, setConnection] = useState<'connecting' | 'live' | 'reconnecting'>('connecting');

  useEffect(() => {
    setEvents([]);
    setConnection('connecting');
    const query = new URLSearchParams();
    if (eventType) query.set('event_type', eventType);
    if (packageId) query.set('subject_id', packageId);
    // EventSource resends Last-Event-ID by itself when it reconnects, so no event is lost or repeated.
    const source = new EventSource(`/api/v1/events/stream?${query}`);
    const onMessage = (message: MessageEvent<string>) => {
      const event = JSON.parse(message.data) as EventRecord;
      setEvents((current) => [event, ...current].slice(0, MAX_EVENTS));
    };
    source.onopen = () => setConnection('live');
    source.onerror = () => setConnection('reconnecting');
    source.onmessage = onMessage;
    return () => source.close();
  }, [eventType, packageId]);

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
        <span className={`badge badge-${connection}`} data-testid="event-connection">
          {connection}
        </span>
      </form>
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
