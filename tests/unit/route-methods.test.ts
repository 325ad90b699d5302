import { describe, expect, it } from 'vitest';
import { ROUTE_METHODS, routeOfPath } from '@/server/http/route-methods';
import { listRouteFiles } from '../support/route-files';

const METHODS = ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS'];

describe('route method table', () => {
  it('matches the exports of the route files', () => {
    const byTemplate = Object.fromEntries(listRouteFiles().map(({ segments, methods }) => [`/api/v1/${segments.join('/')}`, methods]));
    const { '/api/v1/[...unknown]': catchAll, ...files } = byTemplate;
    expect(catchAll).toEqual(METHODS);
    const sorted = (table: Record<string, readonly string[]>) =>
      Object.fromEntries(Object.entries(table).map(([template, methods]) => [template, [...methods].sort()]));
    expect(sorted(ROUTE_METHODS)).toEqual(sorted(files));
  });

  it.each([
    ['/api/v1/files/0b3c/download', '/api/v1/files/[id]/download', 'GET, HEAD, OPTIONS'],
    ['/api/v1/packages/p1/files/a/b/c.txt', '/api/v1/packages/[id]/files/[...relative_path]', 'PUT, OPTIONS'],
    ['/api/v1/packages/p1/manifest.json', '/api/v1/packages/[id]/manifest.json', 'GET, HEAD, OPTIONS'],
    ['/api/v1/uploads', '/api/v1/uploads/[[...id]]', 'HEAD, POST, PATCH, DELETE, OPTIONS'],
    ['/api/v1/uploads/abc', '/api/v1/uploads/[[...id]]', 'HEAD, POST, PATCH, DELETE, OPTIONS'],
    ['/api/v1/events', '/api/v1/events', 'GET, HEAD, OPTIONS'],
  ])('finds the route of %s', (pathname, template, allow) => {
    const route = routeOfPath(pathname);
    expect(route?.template).toBe(template);
    expect(route?.allow).toBe(allow);
  });

  it.each(['/api/v1/nothing', '/api/v1/files/a/b/c', '/api/v2/health'])('finds no route for %s', (pathname) => {
    expect(routeOfPath(pathname)).toBeNull();
  });
});
