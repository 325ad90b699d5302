import { z } from 'zod';
import { encodeCanonicalCbor } from '@/server/encoding/cbor';
import { canonicalJson } from '@/server/encoding/jcs';
import { parseQuery } from '@/server/http/body';
import { prefersJson } from '@/server/http/negotiate';
import { apiRoute } from '@/server/http/route';
import { pollEvents } from '@/server/registry/event-feed';

export const dynamic = 'force-dynamic';

const EventsQuery = z
  .object({
    since: z.coerce.number().int().min(0).max(Number.MAX_SAFE_INTEGER).default(0),
    limit: z.coerce.number().int().min(1).max(500).default(100),
    wait_seconds: z.coerce.number().int().min(0).max(30).default(0),
    subject_kind: z.string().min(1).max(64).optional(),
    subject_id: z.string().min(1).max(256).optional(),
    event_type: z.string().min(1).max(128).optional(),
  })
  .strict();

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
  const body = { events, next_cursor: String(events.length > 0 ? events[events.length - 1].sequence : query.since) };
  const json = prefersJson(request, 'cbor');
  return new Response(json ? canonicalJson(body) : Buffer.from(encodeCanonicalCbor(body)), {
    status: 200,
    headers: { 'Content-Type': json ? 'application/json' : 'application/cbor', 'Cache-Control': 'no-store', Vary: 'Accept' },
  });
});
