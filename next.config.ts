import type { NextConfig } from 'next';

const nextConfig: NextConfig = {
  // Separate build directories let several checkouts of tests build side by side (NEXT_DIST_DIR=.next-a).
  distDir: process.env.NEXT_DIST_DIR || '.next',
  // Native and WebAssembly modules load from node_modules at run time instead of being bundled.
  serverExternalPackages: [
    '@electric-sql/pglite',
    '@napi-rs/blake-hash',
    '@tus/server',
    '@tus/file-store',
    'pg',
    'pino',
    'busboy',
    // One copy of prom-client for every route bundle; the metrics themselves live on globalThis.
    'prom-client',
  ],
  // The build type-checks the application only; `npm run typecheck` covers tests, scripts and benchmarks too.
  typescript: { tsconfigPath: 'tsconfig.build.json' },
  poweredByHeader: false,
  reactStrictMode: true,
};

export default nextConfig;
