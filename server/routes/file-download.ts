import { contentResponse } from '../http/content-response';
import { apiRoute } from '../http/route';
import { openFileContent } from '../registry/content';

/** GET and HEAD of one file's stored bytes, with ranges and conditionals. */
export const downloadFile = apiRoute<{ id: string }>({ scope: 'read' }, async ({ request, app, params }) =>
  contentResponse(request, await openFileContent(app.db, app.backends, params.id)),
);
