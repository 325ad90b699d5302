/**
 * Socket error codes that mean the database server could not be reached or the connection to it broke,
 * as node-postgres reports them from node:net.
 */
const CONNECTION_ERROR_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'EHOSTUNREACH', 'ENETUNREACH', 'ENOTFOUND', 'EAI_AGAIN', 'ETIMEDOUT', 'EPIPE']);

/**
 * SQLSTATE codes of a server that is unreachable or not accepting work, from PostgreSQL 15's
 * errcodes.txt: class 08 (connection exception) but 08P01 (protocol violation, a client bug), 57P01 to
 * 57P03 (shut down by an administrator, crashed, not yet accepting connections) and 53300 (too many
 * connections).
 */
function isUnavailableSqlState(code: string): boolean {
  if (code.startsWith('08')) return code !== '08P01';
  return code === '57P01' || code === '57P02' || code === '57P03' || code === '53300';
}

/**
 * Messages of node-postgres (pg 8) and pg-pool errors that carry no code. 'timeout expired' is the
 * Client's own connectionTimeoutMillis, which TimedClient in db/client.ts sets.
 */
const CONNECTION_ERROR_MESSAGES = [
  'Connection terminated',
  'timeout expired',
  'timeout exceeded when trying to connect',
  'Client has encountered a connection error',
];

/**
 * Returns true when an error, or one of its causes (drizzle wraps driver errors in DrizzleQueryError),
 * means that the database cannot be reached right now, not that the statement itself failed.
 */
export function isDatabaseUnavailable(error: unknown): boolean {
  let current = error;
  for (let depth = 0; depth < 5 && current instanceof Error; depth += 1) {
    const code = (current as { code?: unknown }).code;
    if (typeof code === 'string' && (CONNECTION_ERROR_CODES.has(code) || isUnavailableSqlState(code))) return true;
    if (CONNECTION_ERROR_MESSAGES.some((message) => current instanceof Error && current.message.startsWith(message))) return true;
    current = current.cause;
  }
  return false;
}
