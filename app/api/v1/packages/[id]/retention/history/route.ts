import { encodeCanonicalCbor } from '@/server/encoding/cbor';
import { canonicalJson } from '@/server/encoding/jcs';
import { prefersJson } from '@/server/http/negotiate';
import { apiRoute } from '@/server/http/route';
import { listRetentionHistory } from '@/server/registry/retention-history';

export const dynamic = 'force-dynamic';

/** The package's retention events as JCS JSON, or deterministic CBOR for `Accept: application/cbor`. */
export const GET = apiRoute<{ id: string }>({ scope: 'read' }, async ({ request, app, params }) => {
  const history = await listRetentionHistory(app.db, params.id);
  const json = prefersJson(request, 'json');
  return new Response(json ? canonicalJson(history) : Buffer.from(encodeCanonicalCbor(history)), {
    status: 200,
    headers: { 'Content-Type': json ? 'application/json' : 'application/cbor', 'Cache-Control': 'no-store', Vary: 'Accept' },
  });
});
