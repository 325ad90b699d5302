import { test as base, expect, type APIRequestContext, type Page } from '@playwright/test';
import path from 'node:path';

export const SCREENSHOTS = path.resolve(import.meta.dirname, '../screenshots');

export interface Tokens {
  admin: string;
  adminName: string;
  read: string;
  readName: string;
}

function requireEnv(name: string): string {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is unset; run the specs through playwright.config.ts so its global setup starts the server`);
  return value;
}

/** Drives the console's pages through their data-testid attributes. */
export class ConsolePage {
  constructor(readonly page: Page) {}

  async signIn(token: string): Promise<void> {
    await this.page.goto('/sign-in');
    await this.page.getByTestId('token-input').fill(token);
    await this.page.getByTestId('sign-in-submit').click();
    await expect(this.page.getByTestId('session-actor')).toBeVisible();
  }

  async signOut(): Promise<void> {
    await this.page.getByTestId('sign-out').click();
    await expect(this.page.getByTestId('sign-in-form')).toBeVisible();
  }

  /** Creates a package through the form and returns its id once the detail page shows it. */
  async createPackage(input: { name: string; producer: string; subject: string; metadata?: string }): Promise<string> {
    await this.page.goto('/packages/new');
    await this.page.getByTestId('package-name').fill(input.name);
    await this.page.getByTestId('package-producer').fill(input.producer);
    await this.page.getByTestId('package-subject').fill(input.subject);
    await expect(this.page.getByTestId('package-class').locator('option')).not.toHaveCount(0);
    if (input.metadata !== undefined) await this.page.getByTestId('package-metadata').fill(input.metadata);
    await this.page.getByTestId('create-package-submit').click();
    const detail = this.page.getByTestId('package-detail');
    await expect(detail).toBeVisible();
    const id = await detail.getAttribute('data-package-id');
    if (!id) throw new Error('the package page has no data-package-id');
    return id;
  }

  async screenshot(name: string): Promise<void> {
    await this.page.screenshot({ path: path.join(SCREENSHOTS, `${name}.png`), fullPage: false });
  }
}

/** Calls the HTTP API directly with a bearer token, as a pipeline would. */
export class ApiClient {
  constructor(
    readonly request: APIRequestContext,
    readonly token: string,
  ) {}

  private headers(extra: Record<string, string> = {}) {
    return { Authorization: `Bearer ${this.token}`, Accept: 'application/json', ...extra };
  }

  async createPackage(name: string): Promise<{ id: string }> {
    const response = await this.request.post('/api/v1/packages', {
      headers: this.headers(),
      data: { name, producer: 'e2e', subject: 'api', retention_class: 'standard', metadata: {} },
    });
    expect(response.status(), await response.text()).toBe(201);
    return (await response.json()) as { id: string };
  }

  async putFile(packageId: string, relativePath: string, body: Buffer): Promise<void> {
    const response = await this.request.put(`/api/v1/packages/${packageId}/files/${relativePath}`, {
      headers: this.headers({ 'Content-Type': 'application/octet-stream' }),
      data: body,
    });
    expect(response.status(), await response.text()).toBe(201);
  }

  post(pathname: string, data?: unknown) {
    return this.request.post(pathname, { headers: this.headers(), data });
  }

  get(pathname: string) {
    return this.request.get(pathname, { headers: this.headers() });
  }
}

export const test = base.extend<{ tokens: Tokens; console: ConsolePage; adminApi: ApiClient; readApi: ApiClient }>({
  baseURL: async ({}, use) => use(requireEnv('E2E_BASE_URL')),
  tokens: async ({}, use) =>
    use({
      admin: requireEnv('E2E_ADMIN_TOKEN'),
      adminName: requireEnv('E2E_ADMIN_NAME'),
      read: requireEnv('E2E_READ_TOKEN'),
      readName: requireEnv('E2E_READ_NAME'),
    }),
  console: async ({ page }, use) => {
    // Chromium may reach only the test server on loopback.
    await page.context().route(/^(?!http:\/\/127\.0\.0\.1:\d+\/)/, (route) => route.abort('blockedbyclient'));
    await use(new ConsolePage(page));
  },
  adminApi: async ({ request, tokens }, use) => use(new ApiClient(request, tokens.admin)),
  readApi: async ({ request, tokens }, use) => use(new ApiClient(request, tokens.read)),
});

export { expect };
