import { buildOpenApiDocument } from '@/server/http/openapi/document';
import { ColumnHeads, SchemaSection, TypeSummary } from './schema-view';

export const metadata = { title: 'API reference · artifact-store' };

type JsonObject = Record<string, any>;

interface Operation {
  method: string;
  path: string;
  operation: JsonObject;
}

function operationAnchor(operation: JsonObject): string {
  return `operation-${operation.operationId}`;
}

/** Returns the scopes an operation needs, read from its security requirements, or null when it is open to anyone. */
function requiredScope(operation: JsonObject): string | null {
  const requirements = (operation.security ?? []) as Record<string, string[]>[];
  if (requirements.some((requirement) => Object.keys(requirement).length === 0)) return null;
  return [...new Set(requirements.flatMap((requirement) => Object.values(requirement).flat()))].join(', ') || null;
}

function ContentList({ content }: { content: Record<string, JsonObject> | undefined }) {
  if (!content) return <span className="muted">no body</span>;
  return (
    <ul>
      {Object.entries(content).map(([mediaType, media]) => (
        <li key={mediaType}>
          <code>{mediaType}</code>
          {media.schema ? (
            <>
              {' '}
              <TypeSummary schema={media.schema} />
            </>
          ) : (
            <span className="muted"> bytes</span>
          )}
        </li>
      ))}
    </ul>
  );
}

function OperationSection({ method, path, operation }: Operation) {
  const scope = requiredScope(operation);
  const parameters = (operation.parameters ?? []) as JsonObject[];
  return (
    <section className="panel" id={operationAnchor(operation)} data-testid={operationAnchor(operation)}>
      <h3>
        <code>
          {method.toUpperCase()} /api/v1{path}
        </code>{' '}
        {operation.summary}
      </h3>
      {operation.description && <p>{operation.description}</p>}
      <p>{scope ? `Needs a token or session with the "${scope}" scope (or admin).` : 'Needs no token.'}</p>

      <h4>Parameters</h4>
      <table className="grid">
        <ColumnHeads columns={['name', 'in', 'type', 'required', 'description']} />
        <tbody>
          {parameters.map((parameter) => (
            <tr key={`${parameter.in}:${parameter.name}`}>
              <td>
                <code>{parameter.name}</code>
              </td>
              <td>{parameter.in}</td>
              <td>
                <TypeSummary schema={parameter.schema} />
                {parameter.schema?.default !== undefined && <span className="muted"> default {JSON.stringify(parameter.schema.default)}</span>}
              </td>
              <td>{parameter.required ? 'yes' : 'no'}</td>
              <td>{parameter.description ?? ''}</td>
            </tr>
          ))}
        </tbody>
      </table>

      {operation.requestBody && (
        <>
          <h4>Request body{operation.requestBody.required ? '' : ' (optional)'}</h4>
          {operation.requestBody.description && <p>{operation.requestBody.description}</p>}
          <ContentList content={operation.requestBody.content} />
        </>
      )}

      <h4>Responses</h4>
      <table className="grid">
        <ColumnHeads columns={['status', 'description', 'body', 'headers']} />
        <tbody>
          {Object.entries(operation.responses as Record<string, JsonObject>).map(([status, response]) => (
            <tr key={status}>
              <td>
                <code>{status}</code>
              </td>
              <td>{response.description}</td>
              <td>
                <ContentList content={response.content} />
              </td>
              <td>
                {Object.entries((response.headers ?? {}) as Record<string, JsonObject>).map(([name, header]) => (
                  <div key={name}>
                    <code>{name}</code>
                    {header.required ? '' : <span className="muted"> (optional)</span>}
                  </div>
                ))}
              </td>
            </tr>
          ))}
        </tbody>
      </table>
    </section>
  );
}

/** Renders the API reference on the server from the same document that /api/v1/openapi.json serves. */
export default function ApiReferencePage() {
  const document = buildOpenApiDocument();
  const operations: Operation[] = Object.entries(document.paths).flatMap(([path, item]) =>
    Object.entries(item).map(([method, operation]) => ({ method, path, operation })),
  );
  const tags = (document.tags as { name: string }[]).map((tag) => tag.name);

  return (
    <div>
      <h1>API reference</h1>
      <p>
        OpenAPI {document.openapi} document: <a href="/api/v1/openapi.json">/api/v1/openapi.json</a>. {String((document.info as JsonObject).description).split('\n\n')[0]}
      </p>

      <nav aria-label="Operations" data-testid="api-reference-index">
        {tags.map((tag) => (
          <div key={tag}>
            <h2>{tag}</h2>
            <ul>
              {operations
                .filter(({ operation }) => operation.tags?.[0] === tag)
                .map(({ method, path, operation }) => (
                  <li key={`${method} ${path}`}>
                    <a href={`#${operationAnchor(operation)}`}>
                      <code>
                        {method.toUpperCase()} {path}
                      </code>
                    </a>{' '}
                    {operation.summary}
                  </li>
                ))}
            </ul>
          </div>
        ))}
      </nav>

      <h2>Operations</h2>
      {operations.map((entry) => (
        <OperationSection key={`${entry.method} ${entry.path}`} {...entry} />
      ))}

      <h2>Schemas</h2>
      {Object.entries(document.components.schemas).map(([name, schema]) => (
        <SchemaSection key={name} name={name} schema={schema} />
      ))}
    </div>
  );
}
