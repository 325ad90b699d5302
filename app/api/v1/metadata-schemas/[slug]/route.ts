import { apiRoute, jsonResponse } from '@/server/http/route';
import { getMetadataSchema } from '@/server/registry/metadata-schemas';

export const dynamic = 'force-dynamic';

export const GET = apiRoute<{ slug: string }>({ scope: 'read' }, async ({ app, params }) =>
  jsonResponse(await getMetadataSchema(app.db, params.slug)),
);
