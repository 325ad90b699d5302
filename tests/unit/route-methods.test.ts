import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { ROUTE_METHODS, routeOfPath } from '@/server/http/route-methods';

const APP_API = path.resolve(import.meta.dirname, '../../app/api/v1');
const METHODS = ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS'];

/** Lists the methods that each route file under app/api/v1 exports, keyed by its route template. */
function routeFileMethods(): Record<string, string[]> {
  const routes: Record<string, string[]> = {};
  for (const file of fs.readdirSync(APP_API, { recursive: true, encoding: 'utf8' })) {
    if (path.basename(file) !== 'route.ts') continue;
    const template = `/api/v1/${path.dirname(file).split(path.sep).join('/')}`;
    const source = fs.readFileSync(path.join(APP_API, file), 'utf8');
    routes[template] = METHODS.filter((method) => new RegExp(`export (const|async function|function) ${method}\\b`).test(source));
  }
  return routes;
}

describe('route method table', () => {
  it('matches the exports of the route files', () => {
    const { '/api/v1/[...unknown]': catchAll, ...files } = routeFileMethods();
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
    expect(routeOfPath(pathname)).toEqual({ template, allow });
  });

  it.each(['/api/v1/nothing', '/api/v1/files/a/b/c', '/api/v2/health'])('finds no route for %s', (pathname) => {
    expect(routeOfPath(pathname)).toBeNull();
  });
});
