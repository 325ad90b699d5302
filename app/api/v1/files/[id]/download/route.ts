import { contentResponse } from '@/server/http/content-response';
import { apiRoute } from '@/server/http/route';
import { openFileContent } from '@/server/registry/content';

export const dynamic = 'force-dynamic';

const download = apiRoute<{ id: string }>({ scope: 'read' }, async ({ request, app, params }) =>
  contentResponse(request, await openFileContent(app.db, app.backends, params.id)),
);

export const GET = download;
export const HEAD = download;
