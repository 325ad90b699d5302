/**
 * Finds references in a JSON Schema that lead back to themselves without moving into a property or an
 * item. Validation follows such a cycle forever on the same value, which ends in a RangeError (stack
 * overflow) inside ajv. Like metadata-validation.ts, this module runs in the browser too, so it must import
 * nothing from Node.js.
 */

/** Keywords whose subschemas apply to the same value as the schema that contains them. */
const SAME_VALUE_SCHEMA = ['not', 'if', 'then', 'else'];
const SAME_VALUE_SCHEMA_LISTS = ['allOf', 'anyOf', 'oneOf'];
const SAME_VALUE_SCHEMA_MAPS = ['dependentSchemas'];

/** Keywords whose values are data, not subschemas, so `$ref` or `$anchor` inside them means nothing. */
const DATA_KEYWORDS = new Set(['const', 'enum', 'default', 'examples']);

interface SchemaNode {
  schema: Record<string, unknown>;
  /** JSON pointer of this subschema from the document root, as in `#/$defs/a`. */
  pointer: string;
  /** The subschema with the nearest `$id` around this one (or the root), against which `#…` refs resolve. */
  resource: Record<string, unknown>;
  resourcePointer: string;
}

/**
 * Returns the pointers of one cycle of `$ref`, `$dynamicRef` and same-value keywords (allOf, anyOf, oneOf,
 * not, if, then, else, dependentSchemas), such as `["#", "#"]` for `{"$ref": "#"}`, or undefined when there
 * is none. Only references within the document (`#`, `#/pointer`, `#anchor`) are followed. A `$dynamicRef`
 * is taken to reach every `$anchor` or `$dynamicAnchor` with its name, because the one it reaches depends
 * on the dynamic scope.
 * NOTE: a cycle that validation can never enter, such as one under `"if": false`, is reported too.
 */
export function findSameValueCycle(root: Record<string, unknown>): string[] | undefined {
  const nodes = collectNodes(root);
  const byObject = new Map(nodes.map((node) => [node.schema, node]));
  const anchors = new Map<string, SchemaNode[]>();
  for (const node of nodes) {
    for (const keyword of ['$anchor', '$dynamicAnchor']) {
      const name = node.schema[keyword];
      if (typeof name === 'string') anchors.set(name, [...(anchors.get(name) ?? []), node]);
    }
  }

  const successors = (node: SchemaNode): SchemaNode[] => {
    const next: SchemaNode[] = [];
    const add = (value: unknown) => {
      const child = typeof value === 'object' && value !== null ? byObject.get(value as Record<string, unknown>) : undefined;
      if (child) next.push(child);
    };
    for (const keyword of SAME_VALUE_SCHEMA) add(node.schema[keyword]);
    for (const keyword of SAME_VALUE_SCHEMA_LISTS) {
      const list = node.schema[keyword];
      if (Array.isArray(list)) list.forEach(add);
    }
    for (const keyword of SAME_VALUE_SCHEMA_MAPS) {
      const map = node.schema[keyword];
      if (isObject(map)) Object.values(map).forEach(add);
    }
    const ref = node.schema.$ref;
    if (typeof ref === 'string') resolveRef(node, ref, anchors, false).forEach(add);
    const dynamicRef = node.schema.$dynamicRef;
    if (typeof dynamicRef === 'string') resolveRef(node, dynamicRef, anchors, true).forEach(add);
    return next;
  };

  return findCycle(nodes, successors)?.map((node) => node.pointer);
}

/** Lists every object at a schema position, depth first, skipping data keywords. */
function collectNodes(root: Record<string, unknown>): SchemaNode[] {
  const nodes: SchemaNode[] = [];
  const pending: SchemaNode[] = [{ schema: root, pointer: '#', resource: root, resourcePointer: '#' }];
  const seen = new Set<object>();
  while (pending.length > 0) {
    const node = pending.pop()!;
    if (seen.has(node.schema)) continue;
    seen.add(node.schema);
    const isResource = node.schema !== node.resource && typeof node.schema.$id === 'string';
    const current = isResource ? { ...node, resource: node.schema, resourcePointer: node.pointer } : node;
    nodes.push(current);

    for (const [key, value] of Object.entries(current.schema)) {
      if (DATA_KEYWORDS.has(key)) continue;
      const childPointer = `${current.pointer}/${escapePointerToken(key)}`;
      const children: [unknown, string][] = Array.isArray(value)
        ? value.map((item, index) => [item, `${childPointer}/${index}`])
        : [[value, childPointer]];
      for (const [child, pointer] of children) {
        if (isObject(child)) pending.push({ schema: child, pointer, resource: current.resource, resourcePointer: current.resourcePointer });
      }
    }
  }
  return nodes;
}

function resolveRef(node: SchemaNode, ref: string, anchors: Map<string, SchemaNode[]>, dynamic: boolean): unknown[] {
  if (!ref.startsWith('#')) return [];
  let fragment: string;
  try {
    fragment = decodeURIComponent(ref.slice(1));
  } catch {
    return [];
  }
  if (fragment !== '' && !fragment.startsWith('/')) {
    const named = anchors.get(fragment) ?? [];
    return (dynamic ? named : named.filter((target) => target.resource === node.resource)).map((target) => target.schema);
  }

  let target: unknown = node.resource;
  for (const token of fragment.split('/').slice(1)) {
    const key = token.replace(/~1/g, '/').replace(/~0/g, '~');
    if (Array.isArray(target)) target = target[Number(key)];
    else if (isObject(target) && Object.hasOwn(target, key)) target = target[key];
    else return [];
  }
  return [target];
}

/** Returns the nodes of one cycle, the first node repeated at the end, with an iterative depth-first search. */
function findCycle(nodes: SchemaNode[], successors: (node: SchemaNode) => SchemaNode[]): SchemaNode[] | undefined {
  const state = new Map<SchemaNode, 'open' | 'done'>();
  for (const start of nodes) {
    if (state.has(start)) continue;
    const path: { node: SchemaNode; next: SchemaNode[] }[] = [{ node: start, next: successors(start) }];
    state.set(start, 'open');
    while (path.length > 0) {
      const top = path[path.length - 1];
      const child = top.next.pop();
      if (!child) {
        state.set(top.node, 'done');
        path.pop();
        continue;
      }
      const childState = state.get(child);
      if (childState === 'open') {
        const cycleStart = path.findIndex((entry) => entry.node === child);
        return [...path.slice(cycleStart).map((entry) => entry.node), child];
      }
      if (childState === undefined) {
        state.set(child, 'open');
        path.push({ node: child, next: successors(child) });
      }
    }
  }
  return undefined;
}

function escapePointerToken(key: string): string {
  return key.replace(/~/g, '~0').replace(/\//g, '~1');
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
