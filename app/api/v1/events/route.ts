import { encodeCanonicalCbor } from '@/server/encoding/cbor';
import { canonicalJson } from '@/server/encoding/jcs';
import { parseQuery } from '@/server/http/body';
import { prefersJson } from '@/server/http/negotiate';
import { apiRoute } from '@/server/http/route';
import { EventsQuery, pollEvents } from '@/server/registry/event-feed';
import type { EventPage } from '@/server/registry/events';

export const dynamic = 'force-dynamic';

/**
 * Events after `since`, oldest first. `next_cursor` is the sequence to pass as `since` next time (the
 * last returned, or `since` itself when nothing new committed before the wait ended).
 */
export const GET = apiRoute({ scope: 'read' }, async ({ request, app }) => {
  const query = parseQuery(request, EventsQuery);
  const events = await pollEvents(
    app,
    {
      since: query.since,
      limit: query.limit,
      waitSeconds: query.wait_seconds,
      subjectKind: query.subject_kind,
      subjectId: query.subject_id,
      eventTypePrefix: query.event_type,
    },
    request.signal,
  );
  const body: EventPage = { events, next_cursor: String(events.length > 0 ? events[events.length - 1].sequence : query.since) };
  const json = prefersJson(request, 'cbor');
  return new Response(json ? canonicalJson(body) : Buffer.from(encodeCanonicalCbor(body)), {
    status: 200,
    headers: { 'Content-Type': json ? 'application/json' : 'application/cbor', 'Cache-Control': 'no-store', Vary: 'Accept' },
  });
});
