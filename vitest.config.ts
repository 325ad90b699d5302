import { configDefaults, defineConfig } from 'vitest/config';
import path from 'node:path';

export default defineConfig({
  resolve: { alias: { '@': path.resolve(import.meta.dirname) } },
  test: {
    include: ['tests/**/*.test.ts'],
    // The S3 tests start their own Swift server (scripts/swift-test-server.sh) and run only with TEST_SWIFT=1.
    exclude: [...configDefaults.exclude, ...(process.env.TEST_SWIFT === '1' ? [] : ['tests/**/*s3*.test.ts'])],
    globalSetup: ['tests/support/global-setup.ts'],
    testTimeout: 120_000,
    hookTimeout: 300_000,
    // Integration files start their own servers and databases; two cores run two files at once.
    fileParallelism: true,
    maxWorkers: 2,
    pool: 'forks',
  },
});
