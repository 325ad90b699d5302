import Ajv2020, { type ValidateFunction } from 'ajv/dist/2020.js';
import addFormatsModule from 'ajv-formats';
import { decodeCbor } from '@/server/encoding/cbor';
import { buildOpenApiDocument, type OpenApiDocument } from '@/server/http/openapi/document';
import { findMalformedSegment } from '@/scripts/percent-encoding.mjs';

// ajv-formats 3.0.1 is CommonJS; under ESM its function is the default export's default.
const addFormats = ((addFormatsModule as unknown as { default?: typeof addFormatsModule }).default ?? addFormatsModule) as typeof addFormatsModule;

const API_PREFIX = '/api/v1';
const DOCUMENT_ID = 'openapi.json';
const PROBLEM_REF = '#/components/schemas/Problem';

type JsonObject = Record<string, any>;

/** The parts of a response that the checker reads; tus-js-client's responses have no readable body here. */
export interface ObservedResponse {
  status: number;
  header(name: string): string | null;
  /** The body text or bytes; absent when the body cannot be read (tus-js-client) or must not be (streams). */
  readBody?: () => Promise<Uint8Array>;
}

/** A response that the OpenAPI document does not describe. */
export class UndocumentedResponseError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UndocumentedResponseError';
  }
}

interface PathRoute {
  template: string;
  pattern: RegExp;
  literalSegments: number;
}

/**
 * Checks responses against an OpenAPI document: the path must match a template, and the method, status,
 * Content-Type, required headers and (for JSON and CBOR bodies with a schema) the body must be the ones
 * the document lists. Every mismatch throws UndocumentedResponseError naming the operation.
 */
export class OpenApiResponseChecker {
  readonly #document: OpenApiDocument;
  readonly #routes: PathRoute[];
  readonly #ajv: Ajv2020;
  readonly #validators = new Map<string, ValidateFunction>();

  constructor(document: OpenApiDocument) {
    this.#document = document;
    this.#routes = Object.keys(document.paths).map((template) => compileTemplate(template, document.paths[template]));
    // strict: false because the document around the schemas contains OpenAPI keywords that ajv does not know.
    this.#ajv = new Ajv2020({ strict: false, allErrors: true });
    addFormats(this.#ajv);
    this.#ajv.addSchema(document as object, DOCUMENT_ID);
  }

  /** Checks a fetch Response; reads a clone of the body only when the document gives it a schema. */
  async checkFetchResponse(method: string, url: string, response: Response): Promise<void> {
    await this.check(method, url, {
      status: response.status,
      header: (name) => response.headers.get(name),
      readBody: async () => new Uint8Array(await response.clone().arrayBuffer()),
    });
  }

  async check(method: string, url: string, response: ObservedResponse): Promise<void> {
    const pathname = new URL(url, 'http://localhost').pathname;
    const exchange = `${method.toUpperCase()} ${pathname} → ${response.status}`;
    if (!pathname.startsWith(`${API_PREFIX}/`)) throw new UndocumentedResponseError(`${exchange}: the path is outside ${API_PREFIX}.`);
    const route = this.#matchRoute(pathname.slice(API_PREFIX.length));

    if (!route) {
      // As the document's description states, any other path below /api/v1 gets a 404 problem, or a 400
      // problem when its percent-encoding is malformed.
      const expected = findMalformedSegment(pathname) === null ? 404 : 400;
      if (response.status !== expected) throw new UndocumentedResponseError(`${exchange}: no path of the OpenAPI document matches.`);
      await this.#checkBody(exchange, method, response, 'application/problem+json', PROBLEM_REF);
      return;
    }

    const operation = this.#document.paths[route.template][method.toLowerCase()] as JsonObject | undefined;
    if (!operation) throw new UndocumentedResponseError(`${exchange}: ${route.template} has no ${method.toUpperCase()} operation in the document.`);
    const where = `${exchange} (${method.toUpperCase()} ${route.template})`;
    const documented = operation.responses[String(response.status)] as JsonObject | undefined;
    if (!documented) {
      throw new UndocumentedResponseError(`${where}: status ${response.status} is not documented; documented: ${Object.keys(operation.responses).join(', ')}.`);
    }

    for (const [name, header] of Object.entries((documented.headers ?? {}) as Record<string, JsonObject>)) {
      if (header.required && response.header(name) === null) throw new UndocumentedResponseError(`${where}: the required header ${name} is missing.`);
    }

    const contentType = response.header('content-type');
    const content = documented.content as Record<string, JsonObject> | undefined;
    if (!content) {
      if (contentType !== null) throw new UndocumentedResponseError(`${where}: the document lists no body, but the response has Content-Type ${contentType}.`);
      return;
    }
    if (contentType === null) throw new UndocumentedResponseError(`${where}: the response has no Content-Type; documented: ${Object.keys(content).join(', ')}.`);
    const mediaType = matchMediaType(contentType, Object.keys(content));
    if (!mediaType) throw new UndocumentedResponseError(`${where}: Content-Type ${contentType} is not documented; documented: ${Object.keys(content).join(', ')}.`);
    const ref = content[mediaType].schema?.$ref as string | undefined;
    if (ref) await this.#checkBody(where, method, response, baseType(contentType), ref);
  }

  #matchRoute(path: string): PathRoute | undefined {
    let best: PathRoute | undefined;
    for (const route of this.#routes) {
      if (route.pattern.test(path) && (!best || route.literalSegments > best.literalSegments)) best = route;
    }
    return best;
  }

  async #checkBody(where: string, method: string, response: ObservedResponse, contentType: string, ref: string): Promise<void> {
    if (method.toUpperCase() === 'HEAD' || !response.readBody) return;
    const bytes = await response.readBody();
    let body: unknown;
    try {
      body = contentType === 'application/cbor' ? decodeCbor(bytes) : JSON.parse(new TextDecoder().decode(bytes));
    } catch (error) {
      throw new UndocumentedResponseError(`${where}: the ${contentType} body does not parse: ${(error as Error).message}`);
    }
    const validate = this.#validator(ref);
    if (!validate(body)) {
      const errors = (validate.errors ?? []).map((error) => `${error.instancePath || '(root)'} ${error.message}`).join('; ');
      throw new UndocumentedResponseError(`${where}: the body does not match ${ref}: ${errors}. Body: ${JSON.stringify(body).slice(0, 500)}`);
    }
  }

  #validator(ref: string): ValidateFunction {
    let validate = this.#validators.get(ref);
    if (!validate) {
      validate = this.#ajv.compile({ $ref: `${DOCUMENT_ID}${ref}` });
      this.#validators.set(ref, validate);
    }
    return validate;
  }
}

function compileTemplate(template: string, item: Record<string, JsonObject>): PathRoute {
  const multipleSegments = new Set<string>();
  for (const operation of Object.values(item)) {
    for (const parameter of operation.parameters ?? []) {
      if (parameter.in === 'path' && parameter['x-multiple-segments']) multipleSegments.add(parameter.name);
    }
  }
  let literalSegments = 0;
  const source = template
    .split('/')
    .map((segment) => {
      const parameter = /^\{(.+)\}$/.exec(segment);
      if (parameter) return multipleSegments.has(parameter[1]) ? '.+' : '[^/]+';
      literalSegments += 1;
      return segment.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
    })
    .join('/');
  return { template, pattern: new RegExp(`^${source}$`), literalSegments };
}

function baseType(contentType: string): string {
  return contentType.split(';')[0].trim().toLowerCase();
}

/** Returns the documented media type that a Content-Type falls under: exact, then `type/*`, then `*\/*`. */
function matchMediaType(contentType: string, documented: string[]): string | undefined {
  const type = baseType(contentType);
  return documented.find((key) => key === type) ?? documented.find((key) => key === `${type.split('/')[0]}/*`) ?? documented.find((key) => key === '*/*');
}

let shared: OpenApiResponseChecker | undefined;

/** Returns the checker for the document this source tree builds; a test compares it with the served one. */
export function responseChecker(): OpenApiResponseChecker {
  shared ??= new OpenApiResponseChecker(buildOpenApiDocument());
  return shared;
}
