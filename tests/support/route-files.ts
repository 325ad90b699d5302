import fs from 'node:fs';
import path from 'node:path';

const API_DIR = path.resolve(import.meta.dirname, '../../app/api/v1');
const METHODS = ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS'];

/** A route file below app/api/v1: its directory segments (such as `files`, `[id]`) and the methods it exports. */
export interface RouteFile {
  segments: string[];
  methods: string[];
}

/** Lists every `route.ts` below app/api/v1 with the HTTP methods it exports. */
export function listRouteFiles(): RouteFile[] {
  const routes: RouteFile[] = [];
  for (const file of fs.readdirSync(API_DIR, { recursive: true, encoding: 'utf8' })) {
    if (path.basename(file) !== 'route.ts') continue;
    const source = fs.readFileSync(path.join(API_DIR, file), 'utf8');
    const methods = METHODS.filter((method) => new RegExp(`^export (const|async function|function) ${method}\\b`, 'm').test(source));
    routes.push({ segments: path.dirname(file).split(path.sep).filter((segment) => segment !== '.'), methods });
  }
  return routes;
}
