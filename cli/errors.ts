/** Exit statuses of the artifact-store command; README.md lists the same values. */
export const EXIT_OK = 0;
export const EXIT_FAILURE = 1;
export const EXIT_USAGE = 2;
export const EXIT_MISMATCH = 3;

/** Invalid command-line arguments; the command prints the message and its usage, then exits 2. */
export class UsageError extends Error {}

/** Bytes that differ from their manifest or file record; exits 3. */
export class VerificationError extends Error {}

/** Any other expected failure (unreadable file, conflicting local state); exits 1 with the message only. */
export class CommandError extends Error {}

/** A non-success HTTP response from the server, with its RFC 9457 problem+json body when it has one; exits 1. */
export class ApiError extends Error {
  readonly status: number;
  readonly title: string;
  readonly problem: Record<string, unknown>;

  constructor(method: string, url: string, status: number, problem: Record<string, unknown>) {
    const title = typeof problem.title === 'string' ? problem.title : `HTTP ${status}`;
    const detail = typeof problem.detail === 'string' ? problem.detail : '';
    super(`${method} ${url} failed with ${status} ${title}${detail ? `: ${detail}` : ''}`);
    this.status = status;
    this.title = title;
    this.problem = problem;
  }

  /** Formats the problem's title, detail and field errors as lines for stderr. */
  describe(): string {
    const lines = [`error: ${this.title} (HTTP ${this.status})`];
    if (typeof this.problem.detail === 'string') lines.push(`  ${this.problem.detail}`);
    const issues = Array.isArray(this.problem.errors) ? this.problem.errors : [];
    for (const issue of issues as { field?: unknown; message?: unknown }[]) {
      lines.push(`  field ${String(issue.field ?? '?')}: ${String(issue.message ?? '')}`);
    }
    for (const key of ['field', 'path', 'upload_id', 'package_status', 'request_id']) {
      if (this.problem[key] !== undefined) lines.push(`  ${key}: ${String(this.problem[key])}`);
    }
    return lines.join('\n');
  }
}
