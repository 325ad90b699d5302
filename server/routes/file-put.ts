import { ValidationError } from '../errors';
import { requestBodyStream } from '../http/node-bodies';
import { apiRoute, jsonResponse } from '../http/route';
import { addFileFromStream } from '../registry/files';

/** Stores the raw request body as one file, as `curl -T FILE` sends it. */
export const putFile = apiRoute<{ id: string; relative_path: string[] }>({ scope: 'write' }, async ({ request, app, params, principal }) => {
  const lengthHeader = request.headers.get('content-length');
  const declaredLength = lengthHeader === null ? undefined : Number(lengthHeader);
  if (declaredLength !== undefined && !Number.isSafeInteger(declaredLength)) {
    throw new ValidationError('Content-Length must be a whole number of bytes.', [
      { field: 'Content-Length', rule: 'integer', message: `invalid value ${JSON.stringify(lengthHeader)}` },
    ]);
  }
  const record = await addFileFromStream(app.db, app.primaryBackend, {
    packageId: params.id,
    relativePath: params.relative_path.join('/'),
    mediaType: request.headers.get('content-type'),
    body: requestBodyStream(request),
    actor: principal.name,
    maxBytes: app.settings.MAX_FILE_SIZE_BYTES,
    declaredLength,
    protocol: 'raw_put',
  });
  return jsonResponse(record, 201, { Location: `/api/v1/files/${record.id}` });
});
