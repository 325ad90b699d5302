type JsonSchema = Record<string, any>;

const REF_PREFIX = '#/components/schemas/';

/** Returns the HTML id of a component schema's section. */
export function schemaAnchor(name: string): string {
  return `schema-${name}`;
}

/** Renders the header row of a reference table. */
export function ColumnHeads({ columns }: { columns: string[] }) {
  return (
    <thead>
      <tr>
        {columns.map((column) => (
          <th key={column}>{column}</th>
        ))}
      </tr>
    </thead>
  );
}

/** Renders a schema's type on one line: a link for a `$ref`, `T[]` for arrays, `a | b` for unions. */
export function TypeSummary({ schema }: { schema: JsonSchema | undefined }) {
  if (!schema || Object.keys(schema).length === 0) return <code>any</code>;
  if (typeof schema.$ref === 'string' && schema.$ref.startsWith(REF_PREFIX)) {
    const name = schema.$ref.slice(REF_PREFIX.length);
    return (
      <a href={`#${schemaAnchor(name)}`}>
        <code>{name}</code>
      </a>
    );
  }
  if ('const' in schema) return <code>{JSON.stringify(schema.const)}</code>;
  if (Array.isArray(schema.enum)) return <code>{schema.enum.map((value: unknown) => JSON.stringify(value)).join(' | ')}</code>;
  const variants = schema.anyOf ?? schema.oneOf;
  if (Array.isArray(variants)) {
    return (
      <>
        {variants.map((variant: JsonSchema, index: number) => (
          <span key={index}>
            {index > 0 && ' | '}
            <TypeSummary schema={variant} />
          </span>
        ))}
      </>
    );
  }
  let types: string[] = [];
  if (Array.isArray(schema.type)) types = schema.type;
  else if (typeof schema.type === 'string') types = [schema.type];
  if (types.includes('array')) {
    return (
      <>
        <TypeSummary schema={schema.items} />
        <code>[]</code>
        {types.includes('null') && <code> | null</code>}
      </>
    );
  }
  const constraints = [schema.format, schema.pattern && `pattern ${schema.pattern}`, rangeOf(schema)].filter(Boolean);
  return (
    <>
      <code>{types.join(' | ') || 'any'}</code>
      {constraints.length > 0 && <span className="muted"> ({constraints.join(', ')})</span>}
    </>
  );
}

function rangeOf(schema: JsonSchema): string | undefined {
  const low = schema.minimum ?? schema.minLength;
  const high = schema.maximum ?? schema.maxLength;
  // zod writes the safe-integer bounds on every integer, which tell a reader nothing, so they are hidden.
  const isShown = (value: unknown) => typeof value === 'number' && Math.abs(value) < Number.MAX_SAFE_INTEGER;
  if (isShown(low) && isShown(high)) return `${low}–${high}`;
  if (isShown(low)) return `≥ ${low}`;
  if (isShown(high)) return `≤ ${high}`;
  return undefined;
}

/** Renders a component schema: its properties as a table, or its type when it is not an object. */
export function SchemaSection({ name, schema }: { name: string; schema: JsonSchema }) {
  const properties = Object.entries((schema.properties ?? {}) as Record<string, JsonSchema>);
  const required = new Set<string>(schema.required ?? []);
  return (
    <section className="panel" id={schemaAnchor(name)} data-testid={`schema-${name}`}>
      <h3>
        <code>{name}</code>
      </h3>
      {schema.description && <p>{schema.description}</p>}
      {properties.length === 0 ? (
        <p>
          <TypeSummary schema={schema} />
        </p>
      ) : (
        <table className="grid">
          <ColumnHeads columns={['field', 'type', 'required', 'description']} />
          <tbody>
            {properties.map(([property, propertySchema]) => (
              <tr key={property}>
                <td>
                  <code>{property}</code>
                </td>
                <td>
                  <TypeSummary schema={propertySchema} />
                </td>
                <td>{required.has(property) ? 'yes' : 'no'}</td>
                <td>{propertySchema.description ?? ''}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      {schema.additionalProperties !== false && properties.length > 0 && <p className="muted">Other members may appear.</p>}
    </section>
  );
}
