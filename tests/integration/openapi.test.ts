import { validate } from '@readme/openapi-parser';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildOpenApiDocument } from '@/server/http/openapi/document';
import { ApiClient } from '../support/client';
import { createTestEnvironment, startServer, type TestEnvironment, type TestServer } from '../support/server';

let environment: TestEnvironment;
let server: TestServer;
let anonymous: ApiClient;

beforeAll(async () => {
  environment = await createTestEnvironment();
  server = await startServer(environment);
  anonymous = new ApiClient(server.url);
});

afterAll(async () => {
  await server?.stop();
  await environment?.cleanup();
});

describe('GET /openapi.json', () => {
  it('serves the document without a token', async () => {
    const response = await anonymous.get('/openapi.json');
    expect(response.status).toBe(200);
    expect(response.headers.get('content-type')).toBe('application/json');
    const served = await response.json();
    const result = await validate(served);
    expect(result.valid ? [] : result.errors).toEqual([]);
    expect(result.valid).toBe(true);
  });

  it('serves the document the checker uses', async () => {
    const first = await (await anonymous.get('/openapi.json')).text();
    const second = await (await anonymous.get('/openapi.json')).text();
    expect(second).toBe(first);
    expect(first).toBe(JSON.stringify(buildOpenApiDocument()));
  });
});
