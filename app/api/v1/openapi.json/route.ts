import { openApiDocumentJson } from '@/server/http/openapi/document';
import { apiRoute } from '@/server/http/route';

export const dynamic = 'force-dynamic';

/** The OpenAPI 3.1 document of this API; open to anyone, like /health. */
export const GET = apiRoute({ scope: null }, async () =>
  new Response(openApiDocumentJson(), { status: 200, headers: { 'Content-Type': 'application/json', 'Cache-Control': 'no-cache' } }),
);
