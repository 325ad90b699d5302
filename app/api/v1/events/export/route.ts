import { Readable } from 'node:stream';
import { parseQuery } from '@/server/http/body';
import { apiRoute } from '@/server/http/route';
import { EVENT_EXPORT_MEDIA_TYPES, EventExportQuery, exportEventLog } from '@/server/integrity/event-log-export';

export const dynamic = 'force-dynamic';

/** Streams the whole event log as a CBOR sequence (RFC 8742) or JSON Lines for offline verification. */
export const GET = apiRoute({ scope: 'read' }, async ({ request, app }) => {
  const { format } = parseQuery(request, EventExportQuery);
  const body = Readable.toWeb(Readable.from(exportEventLog(app.db, format))) as ReadableStream<Uint8Array>;
  return new Response(body, {
    status: 200,
    headers: {
      'Content-Type': EVENT_EXPORT_MEDIA_TYPES[format],
      'Content-Disposition': `attachment; filename="events.${format === 'jsonl' ? 'jsonl' : 'cborseq'}"`,
      'Cache-Control': 'no-store',
    },
  });
});
