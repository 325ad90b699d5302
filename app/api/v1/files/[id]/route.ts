import { apiRoute, jsonResponse } from '@/server/http/route';
import { getFile } from '@/server/registry/files';

export const dynamic = 'force-dynamic';

export const GET = apiRoute<{ id: string }>({ scope: 'read' }, async ({ app, params }) => {
  const { package_status: _status, ...file } = await getFile(app.db, params.id);
  return jsonResponse(file);
});
