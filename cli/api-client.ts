import { ApiError, CommandError } from './errors';

/** Server address and bearer token for every request of a command. */
export interface Connection {
  /** Server origin such as http://127.0.0.1:3000, without the /api/v1 base path. */
  url: string;
  token: string | undefined;
}

/** A fetch wrapper for /api/v1 that turns every non-success response into an ApiError. */
export class ApiClient {
  constructor(readonly connection: Connection) {}

  /** Absolute URL of an API path such as `/packages`. */
  url(apiPath: string): string {
    return `${this.connection.url.replace(/\/+$/, '')}/api/v1${apiPath}`;
  }

  authHeaders(): Record<string, string> {
    return this.connection.token ? { Authorization: `Bearer ${this.connection.token}` } : {};
  }

  /**
   * Sends a request and returns the response when its status is 2xx or listed in `accept`. Any other
   * status throws ApiError with the problem+json body; a network failure throws CommandError naming the URL.
   */
  async send(method: string, apiPath: string, init: { json?: unknown; headers?: Record<string, string>; accept?: number[]; signal?: AbortSignal } = {}): Promise<Response> {
    const url = this.url(apiPath);
    const headers: Record<string, string> = { ...this.authHeaders(), ...init.headers };
    let body: string | undefined;
    if (init.json !== undefined) {
      headers['Content-Type'] = 'application/json';
      body = JSON.stringify(init.json);
    }
    let response: Response;
    try {
      response = await fetch(url, { method, headers, body, signal: init.signal });
    } catch (error) {
      if (init.signal?.aborted) throw error;
      const cause = (error as { cause?: { message?: string } }).cause?.message ?? (error as Error).message;
      throw new CommandError(`${method} ${url} failed: ${cause}. Check --url and that the server is running.`);
    }
    if ((response.status >= 200 && response.status < 300) || init.accept?.includes(response.status)) return response;
    throw new ApiError(method, url, response.status, await readProblem(response));
  }

  async getJson<T>(apiPath: string): Promise<T> {
    return (await this.send('GET', apiPath, { headers: { Accept: 'application/json' } })).json() as Promise<T>;
  }

  async postJson<T>(apiPath: string, json: unknown = {}, headers: Record<string, string> = {}): Promise<T> {
    return (await this.send('POST', apiPath, { json, headers: { ...headers, Accept: 'application/json' } })).json() as Promise<T>;
  }

  /** Follows `next_cursor` through every page of a list endpoint and returns the items under `key`. */
  async listAll<T>(apiPath: string, key: string, pageSize: number): Promise<T[]> {
    const items: T[] = [];
    let cursor: string | null = null;
    do {
      const separator = apiPath.includes('?') ? '&' : '?';
      const query: string = `${separator}limit=${pageSize}${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`;
      const page: Record<string, unknown> = await this.getJson<Record<string, unknown>>(`${apiPath}${query}`);
      items.push(...((page[key] as T[]) ?? []));
      cursor = (page.next_cursor as string | null) ?? null;
    } while (cursor);
    return items;
  }
}

/** Reads a problem+json body; any other body becomes a problem whose detail is its first 500 characters. */
export async function readProblem(response: Response): Promise<Record<string, unknown>> {
  const text = await response.text().catch(() => '');
  try {
    const parsed = JSON.parse(text);
    if (parsed && typeof parsed === 'object') return parsed as Record<string, unknown>;
  } catch {
    // Not JSON: fall through to the plain-text form.
  }
  return { title: response.statusText || `HTTP ${response.status}`, detail: text.slice(0, 500) };
}
