import { z } from 'zod';
import type { Scope } from '@/server/registry/tokens';
import { Problem, PROBLEM_CONTENT_TYPE } from '../problem';

/** The HTTP methods an operation can have, in the order the document lists them. */
export const METHODS = ['get', 'head', 'post', 'put', 'patch', 'delete', 'options'] as const;
export type Method = (typeof METHODS)[number];

/** A body without a schema (raw bytes, SSE text, a CBOR sequence), described by its media type alone. */
export const RAW = { raw: true } as const;
export type RawBody = typeof RAW;

/** A response body: a named zod schema, or raw bytes. */
export type BodySpec = z.ZodType | RawBody;

export interface ResponseSpec {
  description: string;
  /** Body by media type; `*\/*` stands for "the media type the file was stored with". Absent: no body. */
  content?: Record<string, BodySpec>;
  /** Names of entries in RESPONSE_HEADERS; a name ending in `?` is optional, others are always sent. */
  headers?: string[];
}

export interface PathParameterSpec {
  schema: z.ZodType;
  description: string;
  /** Set for a parameter that takes the rest of the path, slashes included. */
  multipleSegments?: boolean;
}

/** One operation as the route handler implements it; the document builder turns these into OpenAPI. */
export interface OperationSpec {
  method: Method;
  /** Path template below /api/v1, e.g. `/packages/{id}`. */
  path: string;
  operationId: string;
  summary: string;
  description?: string;
  tag: string;
  /** The scope the route requires; null for routes open to anyone. */
  scope: Scope | null;
  pathParameters?: Record<string, PathParameterSpec>;
  query?: z.ZodObject;
  /** Names of entries in REQUEST_HEADERS. */
  requestHeaders?: string[];
  requestBody?: { required: boolean; description?: string; content: Record<string, BodySpec> };
  responses: Record<number, ResponseSpec>;
}

/** Builds a problem+json response with the given description. */
export function problem(description: string, headers: string[] = []): ResponseSpec {
  return { description, content: { [PROBLEM_CONTENT_TYPE]: Problem }, headers };
}

/** Builds a JSON response with the given schema. */
export function json(description: string, schema: z.ZodType, headers: string[] = []): ResponseSpec {
  return { description, content: { 'application/json': schema }, headers };
}

/** The `{id}` of every /packages/{id} path. */
export const PACKAGE_ID: Record<string, PathParameterSpec> = {
  id: { schema: z.uuid(), description: 'The package id. A value that is not a UUID cannot exist and gets 404.' },
};
