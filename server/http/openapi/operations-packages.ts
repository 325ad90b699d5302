import { Manifest } from '@/server/registry/manifest';
import { CreatePackage, ListPackagesQuery, PackagePage, PackageRecord } from '@/server/registry/packages';
import { json, PACKAGE_ID, problem, RAW, type BodySpec, type OperationSpec, type ResponseSpec } from './spec';

// NOTE: the handler sets Content-Length on every 200 and 206, but the Next.js 16.5 request handler drops it
// on streamed bodies and on HEAD. Clients cannot rely on it, so it is listed as optional until that is fixed.
const BYTE_HEADERS = ['Accept-Ranges', 'ETag', 'Content-Disposition', 'Content-Length?', 'X-Content-Type-Options', 'Last-Modified?'];
const CONDITIONAL_HEADERS = ['If-Match', 'If-None-Match', 'If-Modified-Since', 'If-Unmodified-Since'];

/**
 * Builds the responses of a byte download (file content or manifest) for GET; HEAD has the same without
 * partial content. `mediaType` is the body's type, `*\/*` for a file's own media type; `body` is the
 * schema of the whole representation, when it has one.
 */
export function byteResponses(method: 'get' | 'head', mediaType: string, body: BodySpec = RAW, extraHeaders: string[] = []): Record<number, ResponseSpec> {
  const headers = [...BYTE_HEADERS, ...extraHeaders];
  const responses: Record<number, ResponseSpec> = {
    200: { description: method === 'head' ? 'The headers a GET would send, without a body.' : 'The whole representation.', content: { [mediaType]: body }, headers },
    304: { description: 'If-None-Match or If-Modified-Since matched: the client copy is current.', headers: ['ETag', 'Last-Modified?'] },
    412: problem('If-Match or If-Unmodified-Since does not hold.'),
  };
  if (method === 'get') {
    responses[206] = {
      description: 'One range (with Content-Range), or several as multipart/byteranges with a Content-Range in each part.',
      content: { [mediaType]: RAW, 'multipart/byteranges': RAW },
      headers: [...headers, 'Content-Range?'],
    };
    responses[416] = problem('No requested range lies within the representation.', ['Content-Range']);
  }
  return responses;
}

function manifestOperations(path: string, mediaType: string, encodingName: string): OperationSpec[] {
  return (['get', 'head'] as const).map((method) => ({
    method,
    path,
    operationId: `${method === 'get' ? 'get' : 'head'}Manifest${mediaType === 'application/json' ? 'Json' : 'Cbor'}`,
    summary: `${method === 'get' ? 'Download' : 'Check'} the manifest as ${encodingName}`,
    description:
        "The finalized package's fields and its files sorted by the UTF-8 bytes of `relative_path`, with both digests. The same package always yields the same bytes; the manifest digest is BLAKE3 of the CBOR form.",
    tag: 'Manifests',
    scope: 'read',
    pathParameters: PACKAGE_ID,
    requestHeaders: method === 'get' ? ['Range', 'If-Range', ...CONDITIONAL_HEADERS] : CONDITIONAL_HEADERS,
    responses: {
      ...byteResponses(method, mediaType, Manifest, ['X-Manifest-Digest']),
      404: problem('The package does not exist.'),
      409: problem('The package is open: its manifest exists once it is finalized.'),
    },
  }));
}

export const PACKAGE_OPERATIONS: OperationSpec[] = [
  {
    method: 'post',
    path: '/packages',
    operationId: 'createPackage',
    summary: 'Create a package',
    description:
      'Creates an open package. `metadata` must be valid against the named metadata schema, when one is named. With an `Idempotency-Key`, a client can repeat the request after a lost response and get the package that the first request created, instead of a second one.',
    tag: 'Packages',
    scope: 'write',
    requestHeaders: ['Idempotency-Key'],
    requestBody: { required: true, content: { 'application/json': CreatePackage } },
    responses: {
      201: json('The created package, or the package an earlier request with the same Idempotency-Key and body created.', PackageRecord, ['Location']),
      400: problem('An invalid field, Idempotency-Key, an unknown retention class or schema, or metadata that fails its schema; `errors` lists the reasons.'),
      409: problem('A request with the same Idempotency-Key is still being processed; retry once it has completed.'),
      413: problem('The metadata is larger than MAX_METADATA_BYTES.'),
      422: problem('The Idempotency-Key was used with another request body; `package_id` names the package it created.'),
    },
  },
  {
    method: 'get',
    path: '/packages',
    operationId: 'listPackages',
    summary: 'List packages',
    description: 'Newest first, with keyset pagination: pass `next_cursor` as `cursor` for the next page. `metadata_value` needs `metadata_key`.',
    tag: 'Packages',
    scope: 'read',
    query: ListPackagesQuery,
    responses: { 200: json('One page of packages.', PackagePage) },
  },
  {
    method: 'get',
    path: '/packages/{id}',
    operationId: 'getPackage',
    summary: 'Read a package',
    tag: 'Packages',
    scope: 'read',
    pathParameters: PACKAGE_ID,
    responses: { 200: json('The package.', PackageRecord), 404: problem('The package does not exist.') },
  },
  {
    method: 'delete',
    path: '/packages/{id}',
    operationId: 'deleteOpenPackage',
    summary: 'Delete an open package',
    tag: 'Packages',
    scope: 'write',
    pathParameters: PACKAGE_ID,
    responses: {
      204: { description: 'The package and its files are deleted.' },
      404: problem('The package does not exist.'),
      409: problem('The package is finalized or deleted; only open packages can be deleted.'),
    },
  },
  {
    method: 'post',
    path: '/packages/{id}/finalize',
    operationId: 'finalizePackage',
    summary: 'Finalize a package',
    description: 'Freezes the package and computes its manifest. Atomic and irreversible; sets the expiry from the retention class.',
    tag: 'Packages',
    scope: 'write',
    pathParameters: PACKAGE_ID,
    responses: {
      200: json('The finalized package, with `manifest_digest`.', PackageRecord),
      404: problem('The package does not exist.'),
      409: problem('The package is not open, or it has unfinished uploads (listed in `unfinished_uploads`).'),
    },
  },
  ...manifestOperations('/packages/{id}/manifest', 'application/cbor', 'deterministic CBOR'),
  ...manifestOperations('/packages/{id}/manifest.json', 'application/json', 'RFC 8785 JSON'),
];
