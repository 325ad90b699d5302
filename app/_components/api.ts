/** Browser-side access to /api/v1 for the console. The session cookie travels with every same-origin request. */
import type { RetentionClass } from '@/server/registry/retention-classes';

export const API = '/api/v1';

/** A failed API request, carrying the RFC 9457 problem fields the server sent. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly title: string,
    readonly detail: string,
    readonly problem: Record<string, unknown> | null,
  ) {
    super(detail || title || `HTTP ${status}`);
    this.name = 'ApiError';
  }
}

/** Reads a failed response's problem+json body, or whatever it has, into an ApiError. */
export async function toApiError(response: Response): Promise<ApiError> {
  const text = await response.text().catch(() => '');
  let problem: Record<string, unknown> | null = null;
  try {
    problem = text ? (JSON.parse(text) as Record<string, unknown>) : null;
  } catch {
    problem = null;
  }
  const title = typeof problem?.title === 'string' ? problem.title : response.statusText;
  let detail = typeof problem?.detail === 'string' ? problem.detail : `The server answered HTTP ${response.status}.`;
  const issues = Array.isArray(problem?.errors) ? (problem.errors as { field?: string; message?: string }[]) : [];
  if (issues.length > 0) detail += ' ' + issues.map((issue) => `${issue.field ?? ''}: ${issue.message ?? ''}`).join('; ');
  return new ApiError(response.status, title, detail, problem);
}

/** Returns the delay in seconds of a numeric Retry-After header (RFC 9110 section 10.2.3), else null. */
export function retryAfterSeconds(response: Response): number | null {
  const value = response.headers.get('retry-after')?.trim();
  return value && /^\d{1,6}$/.test(value) ? Number(value) : null;
}

/** Sends a request and returns the parsed JSON body; throws ApiError for any status outside 2xx. */
export async function apiJson<T>(path: string, init: RequestInit & { json?: unknown } = {}): Promise<T> {
  const { json, headers, ...rest } = init;
  const response = await fetch(path.startsWith('/') ? path : `${API}/${path}`, {
    ...rest,
    credentials: 'same-origin',
    headers: {
      Accept: 'application/json',
      ...(json !== undefined ? { 'Content-Type': 'application/json' } : {}),
      ...headers,
    },
    body: json !== undefined ? JSON.stringify(json) : rest.body,
  });
  if (!response.ok) throw await toApiError(response);
  if (response.status === 204) return undefined as T;
  return (await response.json()) as T;
}

/** Returns the message to show for a failed query or mutation. */
export function errorMessage(error: unknown): string {
  if (error instanceof ApiError) return `${error.title ? error.title + ': ' : ''}${error.detail}`;
  if (error instanceof Error) return error.message;
  return String(error);
}

export type Scope = 'read' | 'write' | 'retention' | 'metrics' | 'admin';

export interface SessionInfo {
  name: string;
  scopes: Scope[];
  via?: string;
  /** The server's MAX_METADATA_BYTES setting, which the create form checks metadata against. */
  max_metadata_bytes: number;
}

// Wire types come from the server's own definitions; `export type` is erased, so no server code reaches
// the browser bundle.
export type { PackageRecord } from '@/server/registry/packages';
export type { FileRecord } from '@/server/registry/files';
export type { RetentionClass } from '@/server/registry/retention-classes';
export type { MetadataSchemaRecord } from '@/server/registry/metadata-schemas';
export type { EventRecord } from '@/server/registry/events';
export type { ActiveHold as RetentionHold, RetentionState } from '@/server/registry/retention-state';
export type { BackendReport, HealthReport } from '@/server/registry/health';

/** True when the principal has the scope; admin implies every scope, as on the server. */
export function hasScope(session: SessionInfo | undefined, scope: Scope): boolean {
  if (!session) return false;
  return session.scopes.includes(scope) || session.scopes.includes('admin');
}

export function formatBytes(bytes: number | null | undefined): string {
  if (bytes === null || bytes === undefined) return '—';
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit += 1;
  }
  return `${unit === 0 ? value : value.toFixed(1)} ${units[unit]}`;
}

export function formatTime(iso: string | null | undefined): string {
  if (!iso) return '—';
  return iso.replace('T', ' ').replace(/\.\d+Z$/, 'Z');
}

const DURATION_UNITS: [name: string, seconds: number][] = [
  ['day', 86_400],
  ['hour', 3_600],
  ['minute', 60],
  ['second', 1],
];

/** Formats a whole number of seconds with every non-zero unit, such as "1 day 6 hours" or "1 hour 30 minutes". */
export function formatDuration(totalSeconds: number): string {
  const parts: string[] = [];
  let rest = Math.floor(totalSeconds);
  for (const [name, seconds] of DURATION_UNITS) {
    const count = Math.floor(rest / seconds);
    rest -= count * seconds;
    if (count > 0) parts.push(`${count} ${name}${count === 1 ? '' : 's'}`);
  }
  return parts.length > 0 ? parts.join(' ') : '0 seconds';
}

/** Describes a retention class's default duration: null means the class never expires. */
export function formatClassDuration(seconds: number | null): string {
  return seconds === null ? 'no expiry' : formatDuration(seconds);
}

/**
 * Describes when a package expires. Finalizing sets `expires_at` to the finalize time plus the class's
 * default duration, so an open package has no expiry yet, and null on a finalized package means never.
 */
export function describeExpiry(pkg: { status: string; expires_at: string | null; retention_class: string }, classes: RetentionClass[] | undefined): string {
  if (pkg.expires_at) return formatTime(pkg.expires_at);
  if (pkg.status === 'deleted') return '—';
  if (pkg.status === 'finalized') return 'never';
  const found = classes?.find((item) => item.class_id === pkg.retention_class);
  if (!found) return `set at finalize (class ${pkg.retention_class})`;
  if (found.default_duration_seconds === null) return `never (class ${pkg.retention_class} has no expiry)`;
  return `set at finalize (class ${pkg.retention_class}: ${formatDuration(found.default_duration_seconds)})`;
}
