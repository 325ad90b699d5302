import { parseJsonBody } from '@/server/http/body';
import { apiRoute, jsonResponse } from '@/server/http/route';
import { SweepRequest, sweepRetention } from '@/server/registry/retention-sweep';

export const dynamic = 'force-dynamic';

/** Runs a retention sweep now (admin only) and returns its report. */
export const POST = apiRoute({ scope: 'admin' }, async ({ request, app, principal, log }) => {
  const input = await parseJsonBody(request, SweepRequest);
  const report = await sweepRetention(app, { dryRun: input.dry_run, actor: principal.name });
  log.info({ dry_run: report.dry_run, deleted: report.deleted.length, would_delete: report.would_delete.length }, 'retention sweep requested over HTTP finished');
  return jsonResponse(report);
});
