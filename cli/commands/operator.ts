import { setTimeout as sleep } from 'node:timers/promises';
import type { EventRecord } from '../../server/registry/events';
import { ApiClient } from '../api-client';
import { ApiError, UsageError } from '../errors';
import { COMMON_HELP, connectionFrom, parseCommandArgs, positiveInteger, requireOption, requirePositionals } from '../options';

export const LS_HELP = `usage: artifact-store ls [filters] [options]

Lists packages, newest first, one per line: id, status, name, producer, subject, created_at.

  --producer NAME      only packages of this producer
  --subject TEXT       only packages about this subject
  --class CLASS        only packages of this retention class
  --status STATUS      open, finalized or deleted
  --name NAME          only packages with this name
  --limit N            packages per page (default 50, at most 500)
  --cursor CURSOR      continue after a previous page (its next_cursor)
${COMMON_HELP}`;

export const SHOW_HELP = `usage: artifact-store show PACKAGE_ID [options]

Prints a package record, its retention state (expiry, holds, eligibility for deletion) and its files.

${COMMON_HELP}`;

export const HOLD_HELP = `usage: artifact-store hold PACKAGE_ID --reason TEXT [options]

Applies a retention hold, which keeps the package past its expiry until released; prints the hold id.

  --reason TEXT        why the package must be kept (required, recorded in the event log)
${COMMON_HELP}`;

export const RELEASE_HELP = `usage: artifact-store release PACKAGE_ID HOLD_ID --reason TEXT [options]

Releases an active hold of a package.

  --reason TEXT        why the hold ends (required, recorded in the event log)
${COMMON_HELP}`;

export const EXTEND_HELP = `usage: artifact-store extend PACKAGE_ID --until TIME --reason TEXT [options]

Moves the expiry of a finalized package later; the server rejects an earlier time with 409.

  --until TIME         new expiry, RFC 3339, for example 2030-01-31T00:00:00Z
  --reason TEXT        why the package is kept longer (required, recorded in the event log)
${COMMON_HELP}`;

/** Upper bound of the wait between retries of `events --follow`. */
const MAX_RETRY_DELAY_SECONDS = 30;

export const EVENTS_HELP = `usage: artifact-store events [--since N] [--follow] [filters] [options]

Prints events after sequence N in commit order, one per line: sequence, created_at, event_type,
subject, actor. --json prints one JSON object per line. With --follow the command keeps
long-polling for new events (30 s per request) until interrupted. A network error or a 5xx response
is retried after 1, 2, 4 ... up to ${MAX_RETRY_DELAY_SECONDS} s, each retry logged on stderr; a 4xx response ends it with exit 1.

  --since N            print events with a sequence greater than N (default 0)
  --follow             wait for new events instead of exiting
  --type PREFIX        only events whose type starts with PREFIX, such as retention.
  --package ID         only events about this package
  --limit N            events per request (default 100, at most 500)
${COMMON_HELP}`;

function printJson(value: unknown): void {
  console.log(JSON.stringify(value, null, 2));
}

export async function runLs(args: string[]): Promise<number> {
  const { values, positionals } = parseCommandArgs(args, {
    producer: { type: 'string' },
    subject: { type: 'string' },
    class: { type: 'string' },
    status: { type: 'string' },
    name: { type: 'string' },
    limit: { type: 'string' },
    cursor: { type: 'string' },
  });
  if (values.help) {
    console.log(LS_HELP);
    return 0;
  }
  requirePositionals(positionals, []);
  const query = new URLSearchParams();
  const filters = { producer: values.producer, subject: values.subject, retention_class: values.class, status: values.status, name: values.name, cursor: values.cursor };
  for (const [key, value] of Object.entries(filters)) if (value !== undefined) query.set(key, value);
  query.set('limit', String(positiveInteger(values.limit, 'limit', 50, 500)));

  const client = new ApiClient(connectionFrom(values));
  const page = await client.getJson<{ packages: Record<string, unknown>[]; next_cursor: string | null }>(`/packages?${query}`);
  if (values.json) {
    printJson(page);
    return 0;
  }
  for (const pkg of page.packages) console.log([pkg.id, pkg.status, pkg.name, pkg.producer, pkg.subject, pkg.created_at].join('\t'));
  if (page.next_cursor) console.error(`more: --cursor ${page.next_cursor}`);
  return 0;
}

export async function runShow(args: string[]): Promise<number> {
  const { values, positionals } = parseCommandArgs(args, {});
  if (values.help) {
    console.log(SHOW_HELP);
    return 0;
  }
  const [packageId] = requirePositionals(positionals, ['PACKAGE_ID']);
  const client = new ApiClient(connectionFrom(values));
  const id = encodeURIComponent(packageId);
  const pkg = await client.getJson<Record<string, unknown>>(`/packages/${id}`);
  const retention = await client.getJson<Record<string, unknown>>(`/packages/${id}/retention`);
  const files = await client.listAll<Record<string, unknown>>(`/packages/${id}/files`, 'files', 1000);
  if (values.json) {
    printJson({ package: pkg, retention, files });
    return 0;
  }
  for (const key of ['id', 'name', 'producer', 'subject', 'retention_class', 'status', 'manifest_digest', 'created_at', 'finalized_at', 'expires_at', 'deleted_at']) {
    console.log(`${key}: ${pkg[key] ?? '-'}`);
  }
  console.log(`metadata: ${JSON.stringify(pkg.metadata)}`);
  const reasons = (retention.reasons as string[] | undefined) ?? [];
  console.log(`eligible_for_deletion: ${retention.eligible_for_deletion}${reasons.length > 0 ? ` (${reasons.join('; ')})` : ''}`);
  const holds = (retention.active_holds as { hold_id: string; reason: string; actor: string; applied_at: string }[] | undefined) ?? [];
  for (const hold of holds) console.log(`hold: ${hold.hold_id} by ${hold.actor} at ${hold.applied_at}: ${hold.reason}`);
  console.log(`files: ${files.length}`);
  for (const file of files) console.log(`  ${file.relative_path}\t${file.size_bytes}\t${file.content_address}`);
  return 0;
}

export async function runHold(args: string[]): Promise<number> {
  const { values, positionals } = parseCommandArgs(args, { reason: { type: 'string' } });
  if (values.help) {
    console.log(HOLD_HELP);
    return 0;
  }
  const [packageId] = requirePositionals(positionals, ['PACKAGE_ID']);
  const reason = requireOption(values.reason, 'reason');
  const client = new ApiClient(connectionFrom(values));
  const hold = await client.postJson<Record<string, unknown>>(`/packages/${encodeURIComponent(packageId)}/retention/holds`, { reason });
  if (values.json) printJson(hold);
  else console.log(hold.hold_id);
  return 0;
}

export async function runRelease(args: string[]): Promise<number> {
  const { values, positionals } = parseCommandArgs(args, { reason: { type: 'string' } });
  if (values.help) {
    console.log(RELEASE_HELP);
    return 0;
  }
  const [packageId, holdId] = requirePositionals(positionals, ['PACKAGE_ID', 'HOLD_ID']);
  const reason = requireOption(values.reason, 'reason');
  const client = new ApiClient(connectionFrom(values));
  const hold = await client.postJson<Record<string, unknown>>(`/packages/${encodeURIComponent(packageId)}/retention/holds/${encodeURIComponent(holdId)}/release`, { reason });
  if (values.json) printJson(hold);
  else console.log(`released hold ${holdId}`);
  return 0;
}

export async function runExtend(args: string[]): Promise<number> {
  const { values, positionals } = parseCommandArgs(args, { until: { type: 'string' }, reason: { type: 'string' } });
  if (values.help) {
    console.log(EXTEND_HELP);
    return 0;
  }
  const [packageId] = requirePositionals(positionals, ['PACKAGE_ID']);
  const until = requireOption(values.until, 'until');
  const reason = requireOption(values.reason, 'reason');
  const client = new ApiClient(connectionFrom(values));
  const state = await client.postJson<Record<string, unknown>>(`/packages/${encodeURIComponent(packageId)}/retention/extensions`, { new_expires_at: until, reason });
  if (values.json) printJson(state);
  else console.log(`expires_at: ${state.current_expires_at ?? 'never'}`);
  return 0;
}

export async function runEvents(args: string[]): Promise<number> {
  const { values, positionals } = parseCommandArgs(args, {
    since: { type: 'string' },
    follow: { type: 'boolean' },
    type: { type: 'string' },
    package: { type: 'string' },
    limit: { type: 'string' },
  });
  if (values.help) {
    console.log(EVENTS_HELP);
    return 0;
  }
  requirePositionals(positionals, []);
  let since = values.since === undefined ? 0 : Number(values.since);
  if (!Number.isSafeInteger(since) || since < 0) throw new UsageError(`Invalid --since ${JSON.stringify(values.since)}: expected a sequence number of 0 or more.`);
  const limit = positiveInteger(values.limit, 'limit', 100, 500);
  const client = new ApiClient(connectionFrom(values));

  let failures = 0;
  for (;;) {
    const query = new URLSearchParams({ since: String(since), limit: String(limit), wait_seconds: values.follow ? '30' : '0' });
    if (values.type) query.set('event_type', values.type);
    if (values.package) {
      query.set('subject_kind', 'package');
      query.set('subject_id', values.package);
    }
    let page: { events: EventRecord[]; next_cursor: string };
    try {
      page = await client.getJson<{ events: EventRecord[]; next_cursor: string }>(`/events?${query}`);
      failures = 0;
    } catch (error) {
      // A 4xx will not change by asking again; anything else (a restarting server, a lost connection) may.
      if (!values.follow || (error instanceof ApiError && error.status < 500)) throw error;
      failures += 1;
      const delaySeconds = Math.min(2 ** (failures - 1), MAX_RETRY_DELAY_SECONDS);
      const message = error instanceof ApiError ? error.message : (error as Error).message;
      console.error(`events: ${message} Retrying in ${delaySeconds} s (attempt ${failures}); Ctrl-C stops.`);
      await sleep(delaySeconds * 1000);
      continue;
    }
    for (const event of page.events) {
      if (values.json) console.log(JSON.stringify(event));
      else console.log([event.sequence, event.created_at, event.event_type, `${event.subject_kind}:${event.subject_id}`, event.actor].join('\t'));
    }
    since = Number(page.next_cursor);
    // Without --follow, stop once a page came back short: the log has nothing more after `since`.
    if (!values.follow && page.events.length < limit) return 0;
  }
}
