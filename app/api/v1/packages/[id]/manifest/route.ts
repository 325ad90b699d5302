import { contentResponse } from '@/server/http/content-response';
import { apiRoute } from '@/server/http/route';
import { openManifest } from '@/server/registry/content';

export const dynamic = 'force-dynamic';

/** The manifest as deterministic CBOR; its BLAKE3 is the package's manifest digest. */
const manifest = apiRoute<{ id: string }>({ scope: 'read' }, async ({ request, app, params }) => {
  const content = await openManifest(app.db, app.backends, params.id, 'cbor');
  return contentResponse(request, content, { 'X-Manifest-Digest': content.manifestDigest });
});

export const GET = manifest;
export const HEAD = manifest;
