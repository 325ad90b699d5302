import { EventLogVerifyQuery, EventLogVerifyReport } from '@/server/integrity/event-log-verify';
import { EventExportQuery } from '@/server/integrity/event-log-export';
import { EventsQuery, EventStreamQuery } from '@/server/registry/event-feed';
import { EventPage } from '@/server/registry/events';
import { json, problem, RAW, type OperationSpec } from './spec';

const CURSOR_BEYOND_LOG =
  'The cursor is beyond the last event (`last_sequence`): the log was restored from an older backup, or the cursor belongs to another registry.';

export const EVENT_OPERATIONS: OperationSpec[] = [
  {
    method: 'get',
    path: '/events',
    operationId: 'listEvents',
    summary: 'Poll the event log',
    description:
      'Events whose sequence is greater than `since`, oldest first. With `wait_seconds`, waits up to that long for the first event to commit (long poll). `event_type` is a prefix; `subject_kind` and `subject_id` match exactly. Deterministic CBOR by default, RFC 8785 JSON for `Accept: application/json`.',
    tag: 'Events',
    scope: 'read',
    query: EventsQuery,
    responses: {
      200: { description: 'The events and the cursor.', content: { 'application/cbor': EventPage, 'application/json': EventPage }, headers: ['Vary'] },
      409: problem(CURSOR_BEYOND_LOG),
    },
  },
  {
    method: 'get',
    path: '/events/stream',
    operationId: 'streamEvents',
    summary: 'Follow the event log as Server-Sent Events',
    description:
      'Each message has `id: <sequence>` and the Event as JSON in `data`, with no `event:` field. It starts after Last-Event-ID, else with the last `tail` events that match the filters, else after `since`, else after 0, and sends a comment every 15 s to keep the connection open. The stream ends at most 15 s after its token is revoked or its session expires, and usually at once after a revocation.',
    tag: 'Events',
    scope: 'read',
    query: EventStreamQuery,
    requestHeaders: ['Last-Event-ID'],
    responses: { 200: { description: 'An endless event stream.', content: { 'text/event-stream': RAW } }, 409: problem(CURSOR_BEYOND_LOG) },
  },
  {
    method: 'get',
    path: '/events/export',
    operationId: 'exportEvents',
    summary: 'Export the whole event log',
    description: 'An RFC 8742 CBOR sequence or JSON Lines, one record per event with its hash chain links, for offline verification.',
    tag: 'Events',
    scope: 'read',
    query: EventExportQuery,
    responses: {
      200: {
        description: 'The event log, oldest first, as an attachment.',
        content: { 'application/cbor-seq': RAW, 'application/jsonl': RAW },
        headers: ['Content-Disposition'],
      },
    },
  },
  {
    method: 'get',
    path: '/events/verify',
    operationId: 'verifyEvents',
    summary: "Verify the event log's hash chain",
    description: 'Recomputes payload digests and the hash chain over `from`..`to` and reports the first bad sequence.',
    tag: 'Events',
    scope: 'read',
    query: EventLogVerifyQuery,
    responses: { 200: json('The verification report; `ok` is false when a check failed.', EventLogVerifyReport) },
  },
];
