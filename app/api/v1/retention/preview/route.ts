import { apiRoute, jsonResponse } from '@/server/http/route';
import { sweepRetention } from '@/server/registry/retention-sweep';

export const dynamic = 'force-dynamic';

/** What a sweep would delete now (a dry run); changes nothing. */
export const GET = apiRoute({ scope: 'read' }, async ({ app, principal }) =>
  jsonResponse(await sweepRetention(app, { dryRun: true, actor: principal.name })),
);
