import { parseQuery } from '@/server/http/body';
import { consumeSingleFile } from '@/server/http/multipart';
import { apiRoute, jsonResponse } from '@/server/http/route';
import { addFileFromStream, ListFilesQuery, listFiles } from '@/server/registry/files';

export const dynamic = 'force-dynamic';

export const GET = apiRoute<{ id: string }>({ scope: 'read' }, async ({ request, app, params }) => {
  const query = parseQuery(request, ListFilesQuery);
  return jsonResponse(await listFiles(app.db, params.id, query));
});

export const POST = apiRoute<{ id: string }>({ scope: 'write' }, async ({ request, app, params, principal }) => {
  const record = await consumeSingleFile(request, (part) =>
    addFileFromStream(app.db, app.primaryBackend, {
      packageId: params.id,
      relativePath: part.fields.relative_path ?? part.fileName ?? '',
      mediaType: part.fields.media_type ?? part.mimeType,
      body: part.stream,
      actor: principal.name,
      maxBytes: app.settings.MAX_FILE_SIZE_BYTES,
    }),
  );
  return jsonResponse(record, 201, { Location: `/api/v1/files/${record.id}` });
});
