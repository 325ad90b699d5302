import { parseArgs, type ParseArgsConfig } from 'node:util';
import type { Connection } from './api-client';
import { UsageError } from './errors';

type OptionSpec = NonNullable<ParseArgsConfig['options']>;

/** Options every command accepts. */
export const COMMON_OPTIONS = {
  url: { type: 'string' },
  token: { type: 'string' },
  json: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
} as const satisfies OptionSpec;

export const COMMON_HELP = [
  '  --url URL       server origin (default: $ARTIFACT_STORE_URL, else http://127.0.0.1:3000)',
  '  --token TOKEN   bearer token (default: $ARTIFACT_STORE_TOKEN; none sends no Authorization header)',
  '  --json          print the result as JSON for scripts',
  '  -h, --help      print this help',
].join('\n');

/** Parses a command's arguments strictly; any unknown option or missing value raises UsageError. */
export function parseCommandArgs<T extends OptionSpec>(args: string[], options: T) {
  try {
    return parseArgs({ args, options: { ...COMMON_OPTIONS, ...options }, allowPositionals: true, strict: true });
  } catch (error) {
    throw new UsageError((error as Error).message);
  }
}

/** Resolves --url and --token against their environment variables and checks the URL. */
export function connectionFrom(values: { url?: string; token?: string }): Connection {
  const url = values.url ?? process.env.ARTIFACT_STORE_URL ?? 'http://127.0.0.1:3000';
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new UsageError(`Invalid --url ${JSON.stringify(url)}: expected an http or https URL such as http://127.0.0.1:3000.`);
  }
  if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') {
    throw new UsageError(`Invalid --url ${JSON.stringify(url)}: only http and https are supported.`);
  }
  return { url: parsed.origin, token: values.token ?? (process.env.ARTIFACT_STORE_TOKEN || undefined) };
}

/** Returns the positional arguments when there are exactly as many as `names`; otherwise raises UsageError naming them. */
export function requirePositionals(positionals: string[], names: string[]): string[] {
  if (positionals.length !== names.length) {
    throw new UsageError(`Expected ${names.join(' ')}, got ${positionals.length === 0 ? 'nothing' : positionals.map((value) => JSON.stringify(value)).join(' ')}.`);
  }
  return positionals;
}

/** Returns a required string option or raises UsageError naming it. */
export function requireOption(value: string | undefined, name: string): string {
  if (value === undefined || value === '') throw new UsageError(`Missing --${name}.`);
  return value;
}

/** Parses a positive integer option such as --parallel. */
export function positiveInteger(value: string | undefined, name: string, fallback: number, max: number): number {
  if (value === undefined) return fallback;
  const parsed = Number(value);
  if (!Number.isInteger(parsed) || parsed < 1 || parsed > max) throw new UsageError(`Invalid --${name} ${JSON.stringify(value)}: expected an integer from 1 to ${max}.`);
  return parsed;
}
