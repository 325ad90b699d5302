import { parseJsonBody } from '@/server/http/body';
import { apiRoute, jsonResponse } from '@/server/http/route';
import { ScrubRequest, scrubStorage } from '@/server/integrity/scrub';
import { scrubRates } from '@/server/integrity/scrub-schedule';

export const dynamic = 'force-dynamic';

/**
 * Runs a fixity scrub now, over one package's blobs or every stored blob, and returns its report once it
 * finishes. An empty body scrubs everything.
 */
export const POST = apiRoute({ scope: 'admin' }, async ({ request, app, principal }) => {
  const hasBody = request.headers.get('content-type') !== null;
  const body = hasBody ? await parseJsonBody(request, ScrubRequest) : {};
  const report = await scrubStorage(
    {
      db: app.db,
      connection: app.connection,
      backends: app.backends,
      log: app.log,
      ...scrubRates(app.settings),
      copyPlan: { backends: [app.primaryBackend, ...app.copyTargets], copies: app.copies },
    },
    { packageId: body.package_id, actor: principal.name, signal: request.signal },
  );
  return jsonResponse(report);
});
