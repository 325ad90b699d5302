import { parseQuery } from '@/server/http/body';
import { consumeSingleFile } from '@/server/http/multipart';
import { apiRoute, jsonResponse } from '@/server/http/route';
import { addFileFromStream, ListFilesQuery, listFiles } from '@/server/registry/files';
import { ValidationError } from '@/server/errors';

export const dynamic = 'force-dynamic';

export const GET = apiRoute<{ id: string }>({ scope: 'read' }, async ({ request, app, params }) => {
  const query = parseQuery(request, ListFilesQuery);
  return jsonResponse(await listFiles(app.db, params.id, query));
});

export const POST = apiRoute<{ id: string }>({ scope: 'write' }, async ({ request, app, params, principal }) => {
  const record = await consumeSingleFile(request, (part) =>
    addFileFromStream(app.db, app.primaryBackend, {
      packageId: params.id,
      relativePath: requireField(part.fields, 'relative_path'),
      mediaType: part.fields.media_type ?? part.mimeType,
      body: part.stream,
      actor: principal.name,
      maxBytes: app.settings.MAX_FILE_SIZE_BYTES,
      protocol: 'multipart',
      requestComplete: part.complete,
    }),
  );
  return jsonResponse(record, 201, { Location: `/api/v1/files/${record.id}` });
});

/**
 * The file part is streamed as it arrives, so its fields must come first. The part's own file name is not
 * used as a fallback: browsers and busboy strip directories from it, which would store the file elsewhere.
 */
function requireField(fields: Record<string, string>, name: string): string {
  const value = fields[name];
  if (value !== undefined) return value;
  throw new ValidationError(`The multipart field "${name}" must be sent before the "file" part.`, [
    { field: name, rule: 'required_before_file', message: `send "${name}" before the file part` },
  ]);
}
