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
  // Server code keeps its names, so logged errors carry their class (`"type":"DomainError"`) and stack
  // traces name real functions. The client bundle is still minified.
  experimental: { turbopackMinify: { server: false, client: true } },
  poweredByHeader: false,
  reactStrictMode: true,
};

export default nextConfig;
