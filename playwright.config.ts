import { defineConfig } from '@playwright/test';

/**
 * End-to-end tests of the console in Debian's chromium (/usr/bin/chromium). e2e/support/global-setup.ts
 * builds into .next-e2e, creates a fresh data directory with an admin and a read-only token, and starts
 * the production server (scripts/server.mjs) on a free loopback port. Specs read its address and tokens from the environment.
 */
export default defineConfig({
  testDir: 'e2e',
  globalSetup: './e2e/support/global-setup.ts',
  timeout: 60_000,
  expect: { timeout: 10_000 },
  fullyParallel: false,
  workers: 1,
  reporter: [['list']],
  use: {
    viewport: { width: 1280, height: 800 },
    trace: 'retain-on-failure',
    launchOptions: {
      executablePath: '/usr/bin/chromium',
      args: [
        '--no-sandbox',
        '--disable-gpu',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
        '--no-first-run',
      ],
    },
  },
  projects: [{ name: 'chromium', use: { browserName: 'chromium' } }],
});
