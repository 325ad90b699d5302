import { NotFoundError } from '@/server/errors';
import { apiRoute } from '@/server/http/route';

export const dynamic = 'force-dynamic';

/** Answers every path under /api/v1 that no other route matches with a problem+json 404 instead of the HTML page. */
const notFound = apiRoute<{ unknown: string[] }>({ scope: null }, async ({ request }) => {
  throw new NotFoundError('API endpoint', new URL(request.url).pathname);
});

export const GET = notFound;
export const HEAD = notFound;
export const POST = notFound;
export const PUT = notFound;
export const PATCH = notFound;
export const DELETE = notFound;
export const OPTIONS = notFound;
