import { z } from 'zod';
import { SweepReport, SweepRequest } from '@/server/registry/retention-sweep';
import { EventList } from '@/server/registry/events';
import { ExtendRetention } from '@/server/registry/retention-extensions';
import { HoldList, HoldRecord, HoldRequest } from '@/server/registry/retention-holds';
import { RetentionState } from '@/server/registry/retention-state';
import { json, PACKAGE_ID, problem, type OperationSpec } from './spec';

export const RETENTION_OPERATIONS: OperationSpec[] = [
  {
    method: 'get',
    path: '/packages/{id}/retention',
    operationId: 'getRetentionState',
    summary: "Read a package's retention state",
    description: 'The expiry, effective class, active holds and whether retention may delete the package now, with the reasons.',
    tag: 'Retention',
    scope: 'read',
    pathParameters: PACKAGE_ID,
    responses: { 200: json('The retention state.', RetentionState), 404: problem('The package does not exist.') },
  },
  {
    method: 'post',
    path: '/packages/{id}/retention/extensions',
    operationId: 'extendRetention',
    summary: "Move a package's expiry later",
    tag: 'Retention',
    scope: 'retention',
    pathParameters: PACKAGE_ID,
    requestBody: { required: true, content: { 'application/json': ExtendRetention } },
    responses: {
      200: json('The new retention state.', RetentionState),
      404: problem('The package does not exist.'),
      409: problem(
        'The package is not finalized, was deleted, never expires, or the new expiry is not later than the current one (`current_expires_at`, `requested_expires_at`).',
      ),
    },
  },
  {
    method: 'get',
    path: '/packages/{id}/retention/holds',
    operationId: 'listHolds',
    summary: "List a package's holds",
    description: 'Every hold, active and released, oldest first.',
    tag: 'Retention',
    scope: 'read',
    pathParameters: PACKAGE_ID,
    responses: { 200: json('The holds.', HoldList), 404: problem('The package does not exist.') },
  },
  {
    method: 'post',
    path: '/packages/{id}/retention/holds',
    operationId: 'applyHold',
    summary: 'Apply a hold',
    description: 'While any hold is active, retention does not delete the package. Several holds can be active at once.',
    tag: 'Retention',
    scope: 'retention',
    pathParameters: PACKAGE_ID,
    requestBody: { required: true, content: { 'application/json': HoldRequest } },
    responses: {
      201: json('The applied hold.', HoldRecord),
      404: problem('The package does not exist.'),
      409: problem('The package was deleted by retention.'),
    },
  },
  {
    method: 'post',
    path: '/packages/{id}/retention/holds/{hold_id}/release',
    operationId: 'releaseHold',
    summary: 'Release a hold',
    tag: 'Retention',
    scope: 'retention',
    pathParameters: {
      ...PACKAGE_ID,
      hold_id: { schema: z.uuid(), description: 'The hold id. A value that is not a UUID cannot exist and gets 404.' },
    },
    requestBody: { required: true, content: { 'application/json': HoldRequest } },
    responses: {
      200: json('The released hold.', HoldRecord),
      404: problem('The package or the hold does not exist.'),
      409: problem('The hold was already released (`released_at`, `released_by`).'),
    },
  },
  {
    method: 'get',
    path: '/packages/{id}/retention/history',
    operationId: 'getRetentionHistory',
    summary: "List a package's retention events",
    description: 'Creation, finalization, every `retention.*` event and the deletion by retention, oldest first. RFC 8785 JSON by default, deterministic CBOR for `Accept: application/cbor`.',
    tag: 'Retention',
    scope: 'read',
    pathParameters: PACKAGE_ID,
    responses: {
      200: { description: 'The events.', content: { 'application/json': EventList, 'application/cbor': EventList }, headers: ['Vary'] },
      404: problem('The package does not exist.'),
    },
  },
  {
    method: 'get',
    path: '/retention/preview',
    operationId: 'previewRetentionSweep',
    summary: 'Preview a retention sweep',
    description: 'What a sweep would delete now (a dry run); changes nothing.',
    tag: 'Retention',
    scope: 'read',
    responses: { 200: json('The dry-run report.', SweepReport) },
  },
  {
    method: 'post',
    path: '/retention/sweep',
    operationId: 'sweepRetention',
    summary: 'Run a retention sweep',
    description: 'Deletes every finalized, expired package without an active hold, then removes content no live package references.',
    tag: 'Retention',
    scope: 'admin',
    requestBody: { required: true, content: { 'application/json': SweepRequest } },
    responses: { 200: json('The sweep report.', SweepReport) },
  },
];
