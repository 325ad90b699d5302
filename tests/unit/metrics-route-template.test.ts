import { describe, expect, it } from 'vitest';
import { routeTemplate, UNMATCHED_ROUTE } from '@/server/metrics/http';

const ID = '0b6f6a5e-3c1d-4f0e-9b8a-2f4d5c6b7a81';

describe('routeTemplate', () => {
  it('keeps a route without parameters', () => {
    expect(routeTemplate('/api/v1/health', undefined)).toBe('/api/v1/health');
    expect(routeTemplate('/api/v1/health', {})).toBe('/api/v1/health');
  });

  it('replaces a dynamic segment by its name', () => {
    expect(routeTemplate(`/api/v1/packages/${ID}`, { id: ID })).toBe('/api/v1/packages/[id]');
    expect(routeTemplate(`/api/v1/files/${ID}/download`, { id: ID })).toBe('/api/v1/files/[id]/download');
  });

  it('replaces two dynamic segments in order', () => {
    const holdId = '7c1e2d3f-0000-4000-8000-000000000001';
    expect(routeTemplate(`/api/v1/packages/${ID}/retention/holds/${holdId}/release`, { id: ID, hold_id: holdId })).toBe(
      '/api/v1/packages/[id]/retention/holds/[hold_id]/release',
    );
  });

  it('replaces a catch-all by its name', () => {
    expect(routeTemplate(`/api/v1/packages/${ID}/files/dist/app.tar.gz`, { id: ID, relative_path: ['dist', 'app.tar.gz'] })).toBe(
      '/api/v1/packages/[id]/files/[...relative_path]',
    );
    expect(routeTemplate('/api/v1/no/such/endpoint', { unknown: ['no', 'such', 'endpoint'] })).toBe('/api/v1/[...unknown]');
  });

  it('compares decoded segments', () => {
    expect(routeTemplate('/api/v1/metadata-schemas/build%20info', { slug: 'build info' })).toBe('/api/v1/metadata-schemas/[slug]');
    expect(routeTemplate('/api/v1/packages/x/files/a%2Fb', { id: 'x', relative_path: ['a/b'] })).toBe(
      '/api/v1/packages/[id]/files/[...relative_path]',
    );
  });

  it('keeps a value that repeats a later static segment on the parameter', () => {
    expect(routeTemplate('/api/v1/files/download/download', { id: 'download' })).toBe('/api/v1/files/[id]/download');
  });

  it('keeps labels bounded when a value repeats an earlier static segment', () => {
    // The id lands on the static "files" segment, and the raw segment left behind is "files" again.
    expect(routeTemplate('/api/v1/files/files/download', { id: 'files' })).toBe('/api/v1/[id]/files/download');
  });

  it('returns the unmatched label when a parameter is not in the path', () => {
    expect(routeTemplate('/api/v1/packages/abc', { id: 'xyz' })).toBe(UNMATCHED_ROUTE);
    expect(routeTemplate('/api/v1/x', { rest: ['a', 'b', 'c', 'd'] })).toBe(UNMATCHED_ROUTE);
  });
});
