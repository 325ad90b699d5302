import { z } from 'zod';
import { QUERY_INTEGERS } from '../body';
import { PROBLEM_CONTENT_TYPE } from '../problem';
import { REQUEST_HEADERS, REQUEST_SCHEMAS, RESPONSE_HEADERS, RESPONSE_SCHEMAS, SECURITY_SCHEMES } from './components';
import { ADMIN_OPERATIONS } from './operations-admin';
import { EVENT_OPERATIONS } from './operations-events';
import { FILE_OPERATIONS } from './operations-files';
import { PACKAGE_OPERATIONS } from './operations-packages';
import { RETENTION_OPERATIONS } from './operations-retention';
import { UPLOAD_OPERATIONS } from './operations-uploads';
import { METHODS, problem, type BodySpec, type OperationSpec, type ResponseSpec } from './spec';

/** Every operation of the API below /api/v1. */
export const OPERATIONS: OperationSpec[] = [
  ...PACKAGE_OPERATIONS,
  ...FILE_OPERATIONS,
  ...RETENTION_OPERATIONS,
  ...EVENT_OPERATIONS,
  ...ADMIN_OPERATIONS,
  ...UPLOAD_OPERATIONS,
];

type JsonObject = Record<string, unknown>;

const SCHEMA_PREFIX = '#/components/schemas/';

/**
 * Converts a set of named zod schemas into component schemas in one pass, so a schema nested in another
 * named one becomes a `$ref` to its component. zod's `io` decides whether defaulted fields are required
 * (output, what the server sends) or optional (input, what a client may send).
 */
function convertNamedSchemas(named: Record<string, z.ZodType>, io: 'input' | 'output'): Record<string, JsonObject> {
  const registry = z.registry<{ id: string }>();
  for (const name of Object.keys(named).sort()) registry.add(named[name], { id: name });
  const { schemas } = z.toJSONSchema(registry, { target: 'draft-2020-12', io, uri: (id) => `${SCHEMA_PREFIX}${id}` });
  const result: Record<string, JsonObject> = {};
  for (const [name, schema] of Object.entries(schemas)) {
    // Each component would otherwise carry its own `$id` and `$schema`; in the document it is a plain subschema.
    const { $id: _id, $schema: _schema, ...rest } = schema as JsonObject;
    result[name] = rest;
  }
  return result;
}

function convertStandalone(schema: z.ZodType, io: 'input' | 'output'): JsonObject {
  const { $schema: _schema, ...rest } = z.toJSONSchema(schema, { target: 'draft-2020-12', io, override: showQueryIntegerDefault }) as JsonObject;
  return rest;
}

/**
 * Restores the default of a query integer. In input mode zod drops the default of a schema that
 * transforms, because the default is the parsed number, not the string a client sends. The document
 * shows the parameter as an integer, so the number is the right default there.
 */
function showQueryIntegerDefault({ zodSchema, jsonSchema }: { zodSchema: unknown; jsonSchema: JsonObject }): void {
  const def = (zodSchema as z.ZodType)._zod.def;
  if (def.type === 'default' && QUERY_INTEGERS.has((def as z.core.$ZodDefaultDef).innerType as z.ZodType)) {
    jsonSchema.default = (def as z.core.$ZodDefaultDef).defaultValue;
  }
}

/** Compares by UTF-16 code units, as Array.prototype.sort does by default, so the order never depends on the locale. */
function compareKeys([a]: [string, unknown], [b]: [string, unknown]): number {
  if (a < b) return -1;
  return a > b ? 1 : 0;
}

function sortedObject<T>(entries: [string, T][]): Record<string, T> {
  return Object.fromEntries([...entries].sort(compareKeys));
}

class DocumentBuilder {
  readonly schemas: Record<string, JsonObject>;
  readonly #names = new Map<z.ZodType, string>();

  constructor() {
    const responses = convertNamedSchemas(RESPONSE_SCHEMAS, 'output');
    const requests = convertNamedSchemas(REQUEST_SCHEMAS, 'input');
    for (const name of Object.keys(requests)) {
      if (name in responses) throw new Error(`The schema name ${name} is both a request and a response component.`);
    }
    this.schemas = sortedObject(Object.entries({ ...responses, ...requests }));
    for (const [name, schema] of [...Object.entries(RESPONSE_SCHEMAS), ...Object.entries(REQUEST_SCHEMAS)]) this.#names.set(schema, name);
  }

  /** Builds a media type object: a `$ref` to the body's component, or no schema for raw bytes. */
  mediaType(body: BodySpec, where: string): JsonObject {
    if ('raw' in body) return {};
    const name = this.#names.get(body as z.ZodType);
    if (!name) throw new Error(`${where} uses a schema that is not listed in RESPONSE_SCHEMAS or REQUEST_SCHEMAS.`);
    return { schema: { $ref: `${SCHEMA_PREFIX}${name}` } };
  }

  content(content: Record<string, BodySpec>, where: string): JsonObject {
    return sortedObject(Object.entries(content).map(([type, body]) => [type, this.mediaType(body, `${where} ${type}`)]));
  }

  operation(spec: OperationSpec): JsonObject {
    const where = `${spec.method.toUpperCase()} ${spec.path}`;
    const operation: JsonObject = {
      tags: [spec.tag],
      summary: spec.summary,
      ...(spec.description ? { description: spec.description } : {}),
      operationId: spec.operationId,
      security: securityOf(spec),
      parameters: this.parameters(spec),
    };
    if (spec.requestBody) {
      operation.requestBody = {
        required: spec.requestBody.required,
        ...(spec.requestBody.description ? { description: spec.requestBody.description } : {}),
        content: this.content(spec.requestBody.content, `${where} request body`),
      };
    }
    const responses = withCommonResponses(spec);
    operation.responses = Object.fromEntries(
      Object.keys(responses)
        .map(Number)
        .sort((a, b) => a - b)
        .map((status) => [String(status), this.response(responses[status], `${where} ${status}`)]),
    );
    return operation;
  }

  parameters(spec: OperationSpec): JsonObject[] {
    const parameters: JsonObject[] = [];
    for (const [name, parameter] of Object.entries(spec.pathParameters ?? {})) {
      parameters.push({
        name,
        in: 'path',
        required: true,
        description: parameter.description,
        schema: convertStandalone(parameter.schema, 'input'),
        ...(parameter.multipleSegments ? { 'x-multiple-segments': true } : {}),
      });
    }
    if (spec.query) {
      const query = convertStandalone(spec.query, 'input') as { properties?: Record<string, JsonObject>; required?: string[] };
      for (const [name, property] of Object.entries(query.properties ?? {})) {
        const { description, ...schema } = property;
        parameters.push({
          name,
          in: 'query',
          required: query.required?.includes(name) ?? false,
          ...(typeof description === 'string' ? { description } : {}),
          schema,
        });
      }
    }
    for (const name of [...(spec.requestHeaders ?? []), 'X-Request-Id']) {
      const header = REQUEST_HEADERS[name];
      if (!header) throw new Error(`${spec.method.toUpperCase()} ${spec.path} names the unknown request header ${name}.`);
      parameters.push({ name, in: 'header', required: name === 'Tus-Resumable' && spec.method !== 'options', ...header });
    }
    return parameters;
  }

  response(response: ResponseSpec, where: string): JsonObject {
    const headers: [string, JsonObject][] = [];
    for (const entry of [...(response.headers ?? []), 'X-Request-Id']) {
      const optional = entry.endsWith('?');
      const name = optional ? entry.slice(0, -1) : entry;
      const header = RESPONSE_HEADERS[name];
      if (!header) throw new Error(`${where} names the unknown response header ${name}.`);
      headers.push([name, { ...header, required: !optional }]);
    }
    return {
      description: response.description,
      headers: sortedObject(headers),
      ...(response.content ? { content: this.content(response.content, where) } : {}),
    };
  }
}

/**
 * Returns the security requirements. A scoped route accepts a bearer token or the session cookie with that
 * scope (or `admin`). A route open to anyone still reads credentials when they are sent, so `{}` comes first.
 */
function securityOf(spec: OperationSpec): JsonObject[] {
  if (spec.scope === null) return [{}, { bearerAuth: [] }, { sessionCookie: [] }];
  return [{ bearerAuth: [spec.scope] }, { sessionCookie: [spec.scope] }];
}

const MALFORMED_PATH_RULE = '`errors` names the field `(path)` and the rule `percent_encoding`';

/**
 * Adds the responses that the shared wrappers produce: 401 and 403 from authentication, 400 from query
 * validation, and 400, 413 and 415 from JSON body parsing. Every route can also answer 500 for an
 * unexpected error and 503 when the database or storage failed to start. An operation's own entry for a
 * status wins. The server in front of Next.js (scripts/server.mjs) rejects a path parameter with a
 * malformed percent escape with 400, so every operation with path parameters lists that too.
 */
function withCommonResponses(spec: OperationSpec): Record<number, ResponseSpec> {
  const common: Record<number, ResponseSpec> = {
    500: problem('An unexpected server error; the body carries only `request_id`, never the cause.'),
    503: problem('The database, a storage backend or the tus staging directory is unavailable.'),
  };
  if (spec.scope !== null) {
    common[401] = problem('No credentials, or an unknown, revoked or malformed token or session.', ['WWW-Authenticate']);
    common[403] = problem(`The token lacks the "${spec.scope}" scope (see \`required_scope\`).`, ['WWW-Authenticate']);
  }
  if (spec.query) common[400] = problem('An invalid query parameter; `errors` names each one.');
  if (spec.requestBody && 'application/json' in spec.requestBody.content) {
    common[400] = problem('The body is not valid JSON or fails the schema; `errors` names each invalid field.');
    common[413] = problem('The body is larger than the limit in `limit_bytes`.');
    common[415] = problem('The Content-Type is not application/json.');
  }
  const responses = { ...common, ...spec.responses };
  if (spec.pathParameters) {
    const documented = responses[400];
    responses[400] = documented
      ? { ...documented, description: `${documented.description} A path parameter with a malformed percent escape also gets 400; ${MALFORMED_PATH_RULE}.` }
      : problem(`A path parameter with a malformed percent escape: a \`%\` not followed by two hexadecimal digits, or escaped bytes that are not UTF-8; ${MALFORMED_PATH_RULE}.`);
  }
  return responses;
}

export interface OpenApiDocument {
  openapi: string;
  paths: Record<string, Record<string, JsonObject>>;
  components: { schemas: Record<string, JsonObject> } & JsonObject;
  [key: string]: unknown;
}

/** Builds the OpenAPI 3.1 document of the API from the operation tables, in a fixed key order. */
export function buildOpenApiDocument(): OpenApiDocument {
  const builder = new DocumentBuilder();
  const paths: Record<string, Record<string, JsonObject>> = {};
  for (const spec of OPERATIONS) {
    const item = (paths[spec.path] ??= {});
    if (item[spec.method]) throw new Error(`${spec.method.toUpperCase()} ${spec.path} is declared twice.`);
    item[spec.method] = builder.operation(spec);
  }
  const sortedPaths = sortedObject(
    Object.entries(paths).map(([path, item]) => [path, Object.fromEntries(METHODS.filter((method) => item[method]).map((method) => [method, item[method]]))]),
  );
  const tags = [...new Set(OPERATIONS.map((spec) => spec.tag))].sort().map((name) => ({ name }));

  return {
    openapi: '3.1.0',
    info: {
      title: 'artifact-store API',
      version: '1.0.0',
      summary: 'Immutable, content-addressed packages of files with retention, holds and an append-only event log.',
      description: [
        'Wire field names are snake_case, timestamps are RFC 3339 in UTC and digests are lowercase hex.',
        `Every error is \`${PROBLEM_CONTENT_TYPE}\` (RFC 9457) with \`type\`, \`title\`, \`status\` and \`detail\`, plus the extension members of the Problem schema where they help.`,
        'A path below /api/v1 that no operation here matches is answered with a 404 problem.',
        'A path with a malformed percent escape (a `%` not followed by two hexadecimal digits, or escaped bytes that are not valid UTF-8) is answered with a 400 problem whatever it names, before any operation runs.',
      ].join('\n\n'),
    },
    servers: [{ url: '/api/v1' }],
    tags,
    paths: sortedPaths,
    components: {
      schemas: builder.schemas,
      securitySchemes: SECURITY_SCHEMES,
    },
  };
}

let cachedJson: string | undefined;

/** Returns the document as JSON text, built once per process. */
export function openApiDocumentJson(): string {
  cachedJson ??= JSON.stringify(buildOpenApiDocument());
  return cachedJson;
}
