import { apiRoute, jsonResponse } from '@/server/http/route';
import { getRetentionState } from '@/server/registry/retention-state';

export const dynamic = 'force-dynamic';

/** The package's expiry, class, active holds and whether retention may delete it now. */
export const GET = apiRoute<{ id: string }>({ scope: 'read' }, async ({ app, params }) => jsonResponse(await getRetentionState(app.db, params.id)));
