import { ValidationError } from '@/server/errors';
import { parseQuery } from '@/server/http/body';
import { apiRoute, jsonResponse } from '@/server/http/route';
import { EventLogVerifyQuery, verifyEventLog } from '@/server/integrity/event-log-verify';

export const dynamic = 'force-dynamic';

/** Recomputes the event log's hash chain over `from`..`to` and returns {ok, checked, first_bad_sequence, reason}. */
export const GET = apiRoute({ scope: 'read' }, async ({ request, app }) => {
  const query = parseQuery(request, EventLogVerifyQuery);
  if (query.from !== undefined && query.to !== undefined && query.to < query.from) {
    throw new ValidationError(`Invalid range: to (${query.to}) is before from (${query.from}).`, [
      { field: 'to', rule: 'range', message: 'must be greater than or equal to from' },
    ]);
  }
  return jsonResponse(await verifyEventLog(app.db, { from: query.from, to: query.to }));
});
