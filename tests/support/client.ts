import type { HttpRequest, HttpResponse } from 'tus-js-client';
import { decodeCbor } from '@/server/encoding/cbor';
import { responseChecker } from './openapi-checker';

/**
 * fetch, then checks the response against the OpenAPI document: an undocumented route, status,
 * Content-Type or header, or a JSON or CBOR body that fails its schema, rejects with an error.
 */
export async function checkedFetch(url: string, init: RequestInit = {}): Promise<Response> {
  const response = await fetch(url, init);
  await responseChecker().checkFetchResponse(init.method ?? 'GET', url, response);
  return response;
}

/**
 * tus-js-client's onAfterResponse hook: checks the status and headers of every tus response against the
 * OpenAPI document. Its bodies are not readable here, so a problem body is not checked.
 */
export async function checkTusResponse(request: HttpRequest, response: HttpResponse): Promise<void> {
  await responseChecker().check(request.getMethod(), request.getURL(), {
    status: response.getStatus(),
    header: (name) => response.getHeader(name) ?? null,
  });
}

/**
 * A small fetch wrapper bound to one server and token; every method returns the raw Response after
 * checking it against the OpenAPI document (see checkedFetch).
 */
export class ApiClient {
  constructor(
    readonly baseUrl: string,
    readonly token?: string,
  ) {}

  withToken(token: string | undefined): ApiClient {
    return new ApiClient(this.baseUrl, token);
  }

  url(path: string): string {
    return `${this.baseUrl}/api/v1${path}`;
  }

  request(method: string, path: string, init: RequestInit & { json?: unknown } = {}): Promise<Response> {
    const headers = new Headers(init.headers);
    if (this.token && !headers.has('authorization')) headers.set('authorization', `Bearer ${this.token}`);
    let body = init.body;
    if (init.json !== undefined) {
      headers.set('content-type', 'application/json');
      body = JSON.stringify(init.json);
    }
    return checkedFetch(this.url(path), { ...init, method, headers, body, duplex: 'half' } as RequestInit);
  }

  get(path: string, init: RequestInit = {}) {
    return this.request('GET', path, init);
  }

  post(path: string, json?: unknown, init: RequestInit = {}) {
    return this.request('POST', path, { ...init, json });
  }

  async createPackage(overrides: Record<string, unknown> = {}): Promise<Record<string, any>> {
    const response = await this.post('/packages', {
      name: 'build-42',
      producer: 'ci',
      subject: 'app@1.0.0',
      retention_class: 'standard',
      ...overrides,
    });
    if (response.status !== 201) throw new Error(`create package: ${response.status} ${await response.text()}`);
    return response.json();
  }

  async putFile(packageId: string, relativePath: string, body: BodyInit, mediaType?: string): Promise<Response> {
    const encoded = relativePath.split('/').map(encodeURIComponent).join('/');
    return this.request('PUT', `/packages/${packageId}/files/${encoded}`, {
      body,
      headers: mediaType ? { 'content-type': mediaType } : {},
    });
  }

  /** Returns the sequence of the last event in the log, read page by page from the start. */
  async lastEventSequence(): Promise<number> {
    let last = 0;
    for (;;) {
      const page = await this.events(last);
      last = Number(page.next_cursor);
      if (page.events.length < 500) return last;
    }
  }

  async events(since: number, waitSeconds = 0, extra = ''): Promise<{ events: any[]; next_cursor: string }> {
    const response = await this.get(`/events?since=${since}&wait_seconds=${waitSeconds}&limit=500${extra}`);
    if (response.status !== 200) throw new Error(`events: ${response.status} ${await response.text()}`);
    return decodeCbor(new Uint8Array(await response.arrayBuffer())) as { events: any[]; next_cursor: string };
  }
}

/** Asserts a problem+json body and returns it. */
export async function problemOf(response: Response): Promise<Record<string, any>> {
  const type = response.headers.get('content-type') ?? '';
  if (!type.startsWith('application/problem+json')) throw new Error(`expected problem+json, got ${type}: ${await response.text()}`);
  return response.json();
}
