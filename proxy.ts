import { NextResponse, type NextRequest } from 'next/server';

/**
 * Adds `X-Frame-Options: DENY` to every response it handles, so no other site can frame the console.
 * The matcher leaves out the upload routes because Next.js buffers the body of a request that passes
 * through the proxy and cuts it at `proxyClientMaxBodySize` (10 MiB by default in Next.js 16.5), which
 * would truncate tus chunks and multipart files.
 */
export function proxy(_request: NextRequest): NextResponse {
  const response = NextResponse.next();
  response.headers.set('X-Frame-Options', 'DENY');
  return response;
}

export const config = {
  matcher: ['/((?!api/v1/uploads|api/v1/packages/[^/]+/files|_next/static|_next/image).*)'],
};
