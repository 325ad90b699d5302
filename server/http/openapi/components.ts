import type { z } from 'zod';
import { ValidationIssue } from '@/server/errors';
import { ChainFailureReason } from '@/server/integrity/event-chain';
import { EventLogVerifyReport } from '@/server/integrity/event-log-verify';
import { LocationFinding, ScrubReport, ScrubRequest } from '@/server/integrity/scrub';
import { EventList, EventPage, EventRecord } from '@/server/registry/events';
import { FilePage, FileRecord, FileStorageLocation } from '@/server/registry/files';
import { BackendList, BackendReport, HealthReport } from '@/server/registry/health';
import { Manifest, ManifestFile } from '@/server/registry/manifest';
import { MetadataSchemaPage, MetadataSchemaRecord, RegisterMetadataSchema } from '@/server/registry/metadata-schemas';
import { CreatePackage, PackagePage, PackageRecord, PackageStatus } from '@/server/registry/packages';
import { RetentionClass, RetentionClassList } from '@/server/registry/retention-classes';
import { BlobRemoval, OrphanRemoval } from '@/server/registry/retention-content';
import { ExtendRetention } from '@/server/registry/retention-extensions';
import { HoldList, HoldRecord, HoldRequest } from '@/server/registry/retention-holds';
import { ActiveHold, RetentionState } from '@/server/registry/retention-state';
import { PackageDeletion, SweepReport, SweepRequest } from '@/server/registry/retention-sweep';
import {
  CreatedSession,
  CreatedToken,
  CreateTokenRequest,
  Scope,
  SessionPrincipal,
  SignInRequest,
  TokenList,
  TokenSummary,
} from '@/server/registry/tokens';
import { Problem } from '../problem';
import { MultipartFileUpload } from './operations-files';

/**
 * Response bodies, converted in zod's output mode (defaults applied, so defaulted fields are required).
 * Every schema an operation names must be listed here or in REQUEST_SCHEMAS, so each one becomes a
 * named component instead of an anonymous copy.
 */
export const RESPONSE_SCHEMAS: Record<string, z.ZodType> = {
  ActiveHold,
  Backend: BackendReport,
  BackendList,
  BlobRemoval,
  ChainFailureReason,
  CreatedSession,
  CreatedToken,
  Event: EventRecord,
  EventList,
  EventLogVerifyReport,
  EventPage,
  File: FileRecord,
  FilePage,
  FileStorageLocation,
  HealthReport,
  Hold: HoldRecord,
  HoldList,
  LocationFinding,
  Manifest,
  ManifestFile,
  MetadataSchema: MetadataSchemaRecord,
  MetadataSchemaPage,
  OrphanRemoval,
  Package: PackageRecord,
  PackageDeletion,
  PackagePage,
  PackageStatus,
  Problem,
  RetentionClass,
  RetentionClassList,
  RetentionState,
  Scope,
  ScrubReport,
  SessionPrincipal,
  SweepReport,
  TokenList,
  TokenSummary,
  ValidationIssue,
};

/** Request bodies, converted in zod's input mode (fields with a default are optional). */
export const REQUEST_SCHEMAS: Record<string, z.ZodType> = {
  CreatePackageRequest: CreatePackage,
  CreateTokenRequest,
  ExtendRetentionRequest: ExtendRetention,
  HoldRequest,
  MultipartFileUpload,
  RegisterMetadataSchemaRequest: RegisterMetadataSchema,
  ScrubRequest,
  SignInRequest,
  SweepRequest,
};

interface HeaderObject {
  description: string;
  schema: Record<string, unknown>;
}

const text = { type: 'string' };
const integer = { type: 'integer', minimum: 0 };

/** Request headers an operation can name; the builder inlines each one as a header parameter. */
export const REQUEST_HEADERS: Record<string, HeaderObject> = {
  'Idempotency-Key': {
    description:
      'A key of 1 to 255 printable ASCII characters as an sf-string (`"8e03978e-…"`), or without the quotes when it has only sf-token characters. A repeated request of the same caller with the same key and body gets the package the first one created, as it is now. The key is freed when that package is deleted.',
    schema: text,
  },
  'If-Match': { description: 'Serve only when the ETag matches (RFC 9110 §13.1.1); 412 otherwise.', schema: text },
  'If-Modified-Since': { description: 'Answer 304 when the representation has not changed since this HTTP date.', schema: text },
  'If-None-Match': { description: 'Answer 304 when one of these ETags matches (weak comparison, RFC 9110 §13.1.2).', schema: text },
  'If-Range': { description: 'Apply Range only when this ETag or date still matches; otherwise send the whole representation.', schema: text },
  'If-Unmodified-Since': { description: 'Serve only when the representation has not changed since this HTTP date; 412 otherwise.', schema: text },
  'Last-Event-ID': { description: 'The last sequence received; EventSource sends it on reconnect and it takes precedence over `since` and `tail`.', schema: { type: 'string', pattern: '^\\s*\\d+\\s*$' } },
  Range: { description: 'Byte ranges (RFC 9110 §14.2): a single range, a suffix range or several ranges (answered as multipart/byteranges).', schema: { type: 'string', examples: ['bytes=0-1023', 'bytes=-512', 'bytes=0-9,20-29'] } },
  'Tus-Resumable': { description: 'The tus protocol version; must be 1.0.0 on every request but OPTIONS.', schema: { type: 'string', const: '1.0.0' } },
  'Upload-Checksum': { description: 'tus checksum extension: `<algorithm> <base64 digest>` of this request body; a mismatch is 460.', schema: text },
  'Upload-Defer-Length': { description: 'tus creation-defer-length: 1 when the length is sent later.', schema: { type: 'string', const: '1' } },
  'Upload-Length': { description: 'The upload size in bytes.', schema: { type: 'string', pattern: '^\\d+$' } },
  'Upload-Metadata': {
    description:
      'Comma-separated `key base64(value)` pairs: `package_id` (required), `relative_path` (or `filename`, required) and `media_type`. The package, path and duplicate checks happen at creation.',
    schema: text,
  },
  'Upload-Offset': { description: 'The offset this PATCH body starts at; it must equal the current offset (409 otherwise).', schema: { type: 'string', pattern: '^\\d+$' } },
  'X-Request-Id': { description: 'A request id (1 to 128 characters of `A-Za-z0-9._-`) to log and echo; another value is replaced by a new UUID.', schema: text },
};

/** Response headers an operation can name; the builder inlines each one in the responses that list it. */
export const RESPONSE_HEADERS: Record<string, HeaderObject> = {
  'Accept-Ranges': { description: 'Always `bytes`.', schema: { type: 'string', const: 'bytes' } },
  Allow: { description: 'The methods this URL accepts.', schema: text },
  'Content-Disposition': { description: 'An attachment with the file name (RFC 6266).', schema: text },
  'Content-Length': { description: 'The body size in bytes.', schema: integer },
  'Content-Range': { description: '`bytes first-last/size` on 206; `bytes */size` on 416.', schema: text },
  ETag: { description: 'A strong entity tag: the quoted content address, which changes exactly when the bytes do.', schema: text },
  'Last-Modified': { description: 'An HTTP date.', schema: text },
  Location: { description: 'The URL of the created resource.', schema: text },
  'Retry-After': { description: 'Seconds to wait before retrying.', schema: integer },
  'Set-Cookie': { description: 'The httpOnly, SameSite=Strict session cookie `as_session` (cleared with Max-Age=0).', schema: text },
  'Tus-Checksum-Algorithm': { description: 'The Upload-Checksum algorithms the server verifies.', schema: text },
  'Tus-Extension': { description: 'The tus extensions the server supports.', schema: text },
  'Tus-Max-Size': { description: 'The largest upload the server accepts, in bytes.', schema: integer },
  'Tus-Resumable': { description: 'The tus protocol version, 1.0.0.', schema: { type: 'string', const: '1.0.0' } },
  'Tus-Version': { description: 'The tus protocol versions the server supports.', schema: text },
  'Upload-Defer-Length': { description: '1 while the upload length is not yet known.', schema: text },
  'Upload-Expires': { description: 'When an unfinished upload expires, as an HTTP date.', schema: text },
  'Upload-Length': { description: 'The declared upload size in bytes.', schema: integer },
  'Upload-Metadata': { description: 'The Upload-Metadata the upload was created with.', schema: text },
  'Upload-Offset': { description: 'The number of bytes received so far.', schema: integer },
  Vary: { description: 'The response depends on the Accept header.', schema: text },
  'WWW-Authenticate': { description: 'A Bearer challenge (RFC 6750 §3), with `error="invalid_token"` or `error="insufficient_scope"` when one applies.', schema: text },
  'X-Content-Type-Options': { description: 'Always `nosniff`.', schema: { type: 'string', const: 'nosniff' } },
  'X-Manifest-Digest': { description: 'The manifest digest, `blake3:<hex>`: BLAKE3 of the CBOR manifest bytes.', schema: { type: 'string', pattern: '^blake3:[0-9a-f]{64}$' } },
  'X-Request-Id': { description: 'The request id: the valid X-Request-Id the client sent, or a new UUID.', schema: text },
};

export const SECURITY_SCHEMES = {
  bearerAuth: {
    type: 'http',
    scheme: 'bearer',
    description:
      'An API token created with `npm run token`. Each token has scopes (read, write, retention, admin); admin implies every scope. With ANON_READ=true, requests without credentials may call read operations.',
  },
  sessionCookie: {
    type: 'apiKey',
    in: 'cookie',
    name: 'as_session',
    description:
      'The console session from POST /session. A state-changing request authenticated by this cookie must come from the same origin (Origin and Sec-Fetch-Site are checked).',
  },
};
