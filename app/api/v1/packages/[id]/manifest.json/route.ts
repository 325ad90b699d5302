import { contentResponse } from '@/server/http/content-response';
import { apiRoute } from '@/server/http/route';
import { openManifest } from '@/server/registry/content';

export const dynamic = 'force-dynamic';

/** The manifest as RFC 8785 JSON, holding the same fields as the CBOR manifest. */
const manifest = apiRoute<{ id: string }>({ scope: 'read' }, async ({ request, app, params }) => {
  const content = await openManifest(app.db, app.backends, params.id, 'json');
  return contentResponse(request, content, { 'X-Manifest-Digest': content.manifestDigest });
});

export const GET = manifest;
export const HEAD = manifest;
