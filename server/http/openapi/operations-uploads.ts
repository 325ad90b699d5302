import { z } from 'zod';
import { problem, RAW, type OperationSpec, type PathParameterSpec, type ResponseSpec } from './spec';

const UPLOAD_ID: Record<string, PathParameterSpec> = {
  id: { schema: z.string().regex(/^[0-9a-f]{32}$/), description: 'The upload id from the Location of POST /uploads.' },
};

const TUS_BODY = 'application/offset+octet-stream';

/** Errors every tus request with an upload id can get, besides those the builder adds. */
const UPLOAD_ERRORS: Record<number, ResponseSpec> = {
  400: problem('An invalid tus header, such as Upload-Offset, Upload-Checksum or a malformed upload URL.', ['Tus-Resumable?']),
  404: problem('The upload does not exist.', ['Tus-Resumable?']),
  410: problem('The upload expired, or its package is no longer open.', ['Tus-Resumable?']),
  412: problem('Tus-Resumable is missing or names a version other than 1.0.0.', ['Tus-Resumable?', 'Tus-Version?']),
  423: problem('Another request holds this upload; retry shortly.', ['Tus-Resumable?', 'Retry-After?']),
};

function uploadOptions(path: string, pathParameters?: Record<string, PathParameterSpec>): OperationSpec {
  const responses: Record<number, ResponseSpec> = {
    204: {
      description: 'The server capabilities.',
      headers: ['Tus-Resumable', 'Tus-Version', 'Tus-Extension', 'Tus-Max-Size?', 'Tus-Checksum-Algorithm'],
    },
  };
  // The upload id is checked before the request reaches @tus/server, for OPTIONS too.
  if (pathParameters) responses[404] = problem('The upload URL names no upload id of this server.', ['Tus-Resumable?']);
  return {
    method: 'options',
    path,
    operationId: pathParameters ? 'describeUploadServer' : 'describeUploads',
    summary: 'Discover tus capabilities',
    description: 'Needs no token. Lists the tus versions, extensions, maximum size and checksum algorithms.',
    tag: 'Uploads (tus)',
    scope: null,
    pathParameters,
    responses,
  };
}

export const UPLOAD_OPERATIONS: OperationSpec[] = [
  {
    method: 'post',
    path: '/uploads',
    operationId: 'createUpload',
    summary: 'Create an upload (tus creation)',
    description:
      'tus 1.0.0 with the creation, creation-with-upload, creation-defer-length, termination, expiration and checksum extensions. The package, path and duplicate checks happen here; the finished upload becomes a file of its package.',
    tag: 'Uploads (tus)',
    scope: 'write',
    requestHeaders: ['Tus-Resumable', 'Upload-Length', 'Upload-Defer-Length', 'Upload-Metadata', 'Upload-Checksum'],
    requestBody: { required: false, description: 'creation-with-upload: the first bytes of the upload.', content: { [TUS_BODY]: RAW } },
    responses: {
      201: {
        description: 'The upload exists at Location. The body is empty; @tus/server 2.4.5 labels it text/plain.',
        content: { 'text/plain': RAW },
        headers: ['Location', 'Tus-Resumable', 'Upload-Offset?', 'Upload-Expires?'],
      },
      400: problem('Missing or invalid Upload-Metadata, Upload-Length or Upload-Checksum; `errors` names the header.', ['Tus-Resumable?']),
      404: problem('The package named by `package_id` does not exist.', ['Tus-Resumable?']),
      409: problem('The package is not open, or the path is taken.', ['Tus-Resumable?']),
      412: UPLOAD_ERRORS[412],
      413: problem('Upload-Length is larger than MAX_FILE_SIZE_BYTES.', ['Tus-Resumable?']),
      415: problem(`A creation-with-upload body is not ${TUS_BODY}.`, ['Tus-Resumable?']),
      460: problem('The creation-with-upload body does not match Upload-Checksum.', ['Tus-Resumable?']),
    },
  },
  uploadOptions('/uploads'),
  {
    method: 'head',
    path: '/uploads/{id}',
    operationId: 'getUploadOffset',
    summary: "Read an upload's offset",
    tag: 'Uploads (tus)',
    scope: 'write',
    pathParameters: UPLOAD_ID,
    requestHeaders: ['Tus-Resumable'],
    responses: {
      200: {
        description: 'The upload state, in headers; @tus/server 2.4.5 labels the absent body text/plain.',
        content: { 'text/plain': RAW },
        headers: ['Tus-Resumable', 'Upload-Offset', 'Upload-Length?', 'Upload-Defer-Length?', 'Upload-Metadata?', 'Upload-Expires?'],
      },
      ...UPLOAD_ERRORS,
    },
  },
  {
    method: 'patch',
    path: '/uploads/{id}',
    operationId: 'appendUpload',
    summary: 'Append bytes to an upload',
    description: 'When the offset reaches the length, the upload becomes a file of its package.',
    tag: 'Uploads (tus)',
    scope: 'write',
    pathParameters: UPLOAD_ID,
    requestHeaders: ['Tus-Resumable', 'Upload-Offset', 'Upload-Length', 'Upload-Checksum'],
    requestBody: { required: true, content: { [TUS_BODY]: RAW } },
    responses: {
      204: { description: 'The bytes are stored.', headers: ['Tus-Resumable', 'Upload-Offset', 'Upload-Expires?'] },
      ...UPLOAD_ERRORS,
      409: problem('Upload-Offset is not the current offset (see `expected_offset` and the Upload-Offset header), or the finished file conflicts with its package.', [
        'Tus-Resumable?',
        'Upload-Offset?',
      ]),
      413: problem('The upload grows past its length or MAX_FILE_SIZE_BYTES.', ['Tus-Resumable?']),
      415: problem(`The body is not ${TUS_BODY}.`, ['Tus-Resumable?']),
      460: problem('The body does not match Upload-Checksum; the chunk is discarded.', ['Tus-Resumable?', 'Upload-Offset?']),
    },
  },
  {
    method: 'delete',
    path: '/uploads/{id}',
    operationId: 'terminateUpload',
    summary: 'Terminate an upload (tus termination)',
    tag: 'Uploads (tus)',
    scope: 'write',
    pathParameters: UPLOAD_ID,
    requestHeaders: ['Tus-Resumable'],
    responses: { 204: { description: 'The upload and its bytes are deleted.', headers: ['Tus-Resumable'] }, ...UPLOAD_ERRORS },
  },
  uploadOptions('/uploads/{id}', UPLOAD_ID),
];
