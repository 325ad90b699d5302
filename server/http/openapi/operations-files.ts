import { z } from 'zod';
import { FilePage, FileRecord, ListFilesQuery } from '@/server/registry/files';
import { byteResponses } from './operations-packages';
import { json, PACKAGE_ID, problem, RAW, type OperationSpec, type PathParameterSpec } from './spec';

/** The multipart/form-data body of POST /packages/{id}/files. */
export const MultipartFileUpload = z
  .object({
    relative_path: z.string().meta({ description: 'Where the file goes in the package; this field must come before the `file` part.' }),
    media_type: z
      .string()
      .optional()
      .meta({ description: "The file's media type; defaults to the part's Content-Type, then application/octet-stream." }),
    file: z.string().meta({ description: 'The file content, streamed; only one file part is accepted.', contentMediaType: 'application/octet-stream' }),
  })
  .strict();

const FILE_ID: Record<string, PathParameterSpec> = {
  id: { schema: z.uuid(), description: 'The file id. A value that is not a UUID cannot exist and gets 404.' },
};

const DOWNLOAD_CONDITIONALS = ['If-Match', 'If-None-Match', 'If-Modified-Since', 'If-Unmodified-Since'];

const ADD_FILE_ERRORS = {
  400: problem('An invalid relative path (the rule is named in `errors`), media type or body.'),
  404: problem('The package does not exist.'),
  409: problem('The package is not open, or the path is taken (or is a directory of, or inside, another file).'),
  413: problem('The file is larger than MAX_FILE_SIZE_BYTES.'),
};

export const FILE_OPERATIONS: OperationSpec[] = [
  {
    method: 'get',
    path: '/packages/{id}/files',
    operationId: 'listFiles',
    summary: "List a package's files",
    description: 'In UTF-8 byte order of their paths, with keyset pagination: pass `next_cursor` as `cursor` for the next page.',
    tag: 'Files',
    scope: 'read',
    pathParameters: PACKAGE_ID,
    query: ListFilesQuery,
    responses: { 200: json('One page of files.', FilePage), 404: problem('The package does not exist.') },
  },
  {
    method: 'post',
    path: '/packages/{id}/files',
    operationId: 'addFileMultipart',
    summary: 'Add a file as multipart/form-data',
    description: 'Streams one file part to storage; the body is never held in memory whole. Identical content is stored once.',
    tag: 'Files',
    scope: 'write',
    pathParameters: PACKAGE_ID,
    requestBody: { required: true, content: { 'multipart/form-data': MultipartFileUpload } },
    responses: {
      201: json('The stored file.', FileRecord, ['Location']),
      ...ADD_FILE_ERRORS,
      415: problem('The body is not multipart/form-data.'),
    },
  },
  {
    method: 'put',
    path: '/packages/{id}/files/{relative_path}',
    operationId: 'putFile',
    summary: 'Add a file from the raw request body',
    description:
      'Stores the request body as one file, as `curl -T FILE` sends it. The media type is the request Content-Type (application/octet-stream when absent).',
    tag: 'Files',
    scope: 'write',
    pathParameters: {
      ...PACKAGE_ID,
      relative_path: {
        schema: z.string(),
        description:
          'The file path in the package: `/`-separated segments, each percent-encoded. It takes the rest of the URL path, so its slashes are not encoded.',
        multipleSegments: true,
      },
    },
    requestBody: { required: true, content: { '*/*': RAW } },
    responses: { 201: json('The stored file.', FileRecord, ['Location']), ...ADD_FILE_ERRORS },
  },
  {
    method: 'get',
    path: '/files/{id}',
    operationId: 'getFile',
    summary: 'Read a file record',
    tag: 'Files',
    scope: 'read',
    pathParameters: FILE_ID,
    responses: { 200: json('The file record, with its storage locations.', FileRecord), 404: problem('The file does not exist.') },
  },
  ...(['get', 'head'] as const).map(
    (method): OperationSpec => ({
      method,
      path: '/files/{id}/download',
      operationId: method === 'get' ? 'downloadFile' : 'headFile',
      summary: method === 'get' ? "Download a file's bytes" : "Check a file's headers",
      description:
        'The strong ETag is `"<content_address>"`. Content-Type is the media type the file was stored with. The bytes are checked against their digest as they stream; when they do not match, the body breaks off before its last byte.',
      tag: 'Files',
      scope: 'read',
      pathParameters: FILE_ID,
      requestHeaders: method === 'get' ? ['Range', 'If-Range', ...DOWNLOAD_CONDITIONALS] : DOWNLOAD_CONDITIONALS,
      responses: {
        ...byteResponses(method, '*/*'),
        404: problem('The file does not exist.'),
        410: problem('The package was deleted by retention; its content is gone and only the record remains.'),
      },
    }),
  ),
];
