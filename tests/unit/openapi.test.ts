import { validate } from '@readme/openapi-parser';
import { describe, expect, it } from 'vitest';
import { buildOpenApiDocument } from '../../server/http/openapi/document';
import { OpenApiResponseChecker, UndocumentedResponseError } from '../support/openapi-checker';
import { listRouteFiles } from '../support/route-files';

const BASE = 'http://127.0.0.1:3000/api/v1';
const PACKAGE_ID = '0b7f7c1e-8a5e-4a8e-9a3c-2f0e5d6c7b8a';

const document = buildOpenApiDocument();
const checker = new OpenApiResponseChecker(document);

interface RouteExport {
  /** The path templates below /api/v1 the file serves: two for an optional catch-all such as `[[...id]]`. */
  templates: string[];
  methods: string[];
}

/** Lists every route file below app/api/v1 with its OpenAPI path templates, leaving out the top-level catch-all. */
function routeExports(): RouteExport[] {
  const toTemplate = (parts: string[]) => `/${parts.map((segment) => segment.replace(/^\[(?:\.\.\.)?(.+)\]$/, '{$1}')).join('/')}`;
  return listRouteFiles()
    .filter(({ segments }) => !(segments.length === 1 && /^\[\.\.\.[^\]]+\]$/.test(segments[0])))
    .map(({ segments, methods }) => {
      const optionalTail = /^\[\[\.\.\.(.+)\]\]$/.exec(segments[segments.length - 1] ?? '');
      const templates = optionalTail
        ? [toTemplate(segments.slice(0, -1)), toTemplate([...segments.slice(0, -1), `[${optionalTail[1]}]`])]
        : [toTemplate(segments)];
      return { templates, methods };
    });
}

function jsonResponse(status: number, body: unknown, headers: Record<string, string> = {}, contentType = 'application/json'): Response {
  return new Response(JSON.stringify(body), { status, headers: { 'Content-Type': contentType, 'X-Request-Id': 'test', ...headers } });
}

function packageRecord(): Record<string, unknown> {
  return {
    id: PACKAGE_ID,
    name: 'build-42',
    producer: 'ci',
    subject: 'app@1.0.0',
    retention_class: 'standard',
    metadata_schema: null,
    metadata: {},
    status: 'open',
    manifest_digest: null,
    created_by: 'test-admin',
    created_at: '2026-01-02T03:04:05.000Z',
    finalized_at: null,
    expires_at: null,
    deleted_at: null,
    last_event_sequence: 1,
  };
}

async function rejection(method: string, url: string, response: Response): Promise<string> {
  const error = await checker.checkFetchResponse(method, url, response).then(
    () => undefined,
    (caught: unknown) => caught,
  );
  expect(error).toBeInstanceOf(UndocumentedResponseError);
  return (error as Error).message;
}

describe('OpenAPI document', () => {
  it('validates as OpenAPI 3.1', async () => {
    const result = await validate(structuredClone(document) as never);
    expect(result.valid ? [] : result.errors).toEqual([]);
    expect(result.valid).toBe(true);
    expect(document.openapi).toBe('3.1.0');
  });

  it('documents every exported route method', () => {
    const routes = routeExports();
    expect(routes.length).toBeGreaterThanOrEqual(30);
    for (const { templates, methods } of routes) {
      for (const method of methods) {
        // The tus route serves each method on one of its two URLs and returns 405 on the other.
        const documented = templates.some((template) => document.paths[template]?.[method.toLowerCase()] !== undefined);
        expect(documented, `${method} ${templates.join(' or ')}`).toBe(true);
      }
    }
  });

  it('documents no operation without a route', () => {
    const exported = new Set(
      routeExports().flatMap(({ templates, methods }) => templates.flatMap((template) => methods.map((method) => `${method.toLowerCase()} ${template}`))),
    );
    for (const [template, item] of Object.entries(document.paths)) {
      for (const method of Object.keys(item)) expect(exported.has(`${method} ${template}`), `${method} ${template}`).toBe(true);
    }
  });

  it('is the same on every build', () => {
    expect(JSON.stringify(buildOpenApiDocument())).toBe(JSON.stringify(document));
    expect(Object.keys(document.paths)).toEqual([...Object.keys(document.paths)].sort());
  });

  it('documents query integer bounds and defaults', () => {
    const parameters = (document.paths['/events'].get.parameters ?? []) as { name: string; schema: unknown }[];
    expect(parameters.find((parameter) => parameter.name === 'limit')?.schema).toEqual({ type: 'integer', minimum: 1, maximum: 500, default: 100 });
    expect(parameters.find((parameter) => parameter.name === 'since')?.schema).toEqual({ type: 'integer', minimum: 0, maximum: Number.MAX_SAFE_INTEGER, default: 0 });
  });

  it('lists the problem statuses of a scoped JSON operation', () => {
    const statuses = Object.keys(document.paths['/packages'].post.responses as object);
    expect(statuses).toEqual(['201', '400', '401', '403', '409', '413', '415', '422', '500', '503']);
  });
});

describe('response checker', () => {
  it('accepts a documented response', async () => {
    await checker.checkFetchResponse('GET', `${BASE}/packages/${PACKAGE_ID}`, jsonResponse(200, packageRecord()));
  });

  it('rejects an undocumented status', async () => {
    const message = await rejection('GET', `${BASE}/packages/${PACKAGE_ID}`, jsonResponse(418, packageRecord()));
    expect(message).toContain('status 418 is not documented');
  });

  it('rejects a body missing a required field', async () => {
    const { name: _name, ...withoutName } = packageRecord();
    const message = await rejection('GET', `${BASE}/packages/${PACKAGE_ID}`, jsonResponse(200, withoutName));
    expect(message).toContain("must have required property 'name'");
  });

  it('rejects an undocumented field', async () => {
    const message = await rejection('GET', `${BASE}/packages/${PACKAGE_ID}`, jsonResponse(200, { ...packageRecord(), secret: 'x' }));
    expect(message).toContain('must NOT have additional properties');
  });

  it('accepts a 404 problem on an unknown path', async () => {
    const problem = { type: 'about:blank', title: 'Not found', status: 404, detail: 'API endpoint "/api/v1/nope" does not exist.' };
    await checker.checkFetchResponse('GET', `${BASE}/nope`, jsonResponse(404, problem, {}, 'application/problem+json'));
  });

  it('rejects an unknown path with a bad problem', async () => {
    const message = await rejection('GET', `${BASE}/nope`, jsonResponse(404, { detail: 'gone' }, {}, 'application/problem+json'));
    expect(message).toContain("must have required property 'title'");
  });

  it('rejects an undocumented route', async () => {
    const message = await rejection('GET', `${BASE}/no-such-endpoint`, jsonResponse(200, {}));
    expect(message).toContain('no path of the OpenAPI document matches');
  });

  it('rejects an undocumented method', async () => {
    const message = await rejection('PATCH', `${BASE}/packages/${PACKAGE_ID}`, jsonResponse(200, packageRecord()));
    expect(message).toContain('has no PATCH operation');
  });

  it('rejects an undocumented content type', async () => {
    const message = await rejection('GET', `${BASE}/packages/${PACKAGE_ID}`, jsonResponse(200, packageRecord(), {}, 'text/html'));
    expect(message).toContain('Content-Type text/html is not documented');
  });

  it('rejects a missing required header', async () => {
    const message = await rejection('POST', `${BASE}/packages`, jsonResponse(201, packageRecord()));
    expect(message).toContain('required header Location is missing');
  });

  it('rejects a problem body without its members', async () => {
    const message = await rejection('GET', `${BASE}/packages/${PACKAGE_ID}`, jsonResponse(404, { title: 'Not found' }, {}, 'application/problem+json'));
    expect(message).toContain("must have required property 'status'");
  });

  it('matches a file path with slashes', async () => {
    const message = await rejection('PUT', `${BASE}/packages/${PACKAGE_ID}/files/a/b/c.txt`, jsonResponse(418, {}));
    expect(message).toContain('(PUT /packages/{id}/files/{relative_path})');
  });
});
