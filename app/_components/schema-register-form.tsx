'use client';

import { useMutation, useQueryClient } from '@tanstack/react-query';
import { useDeferredValue, useMemo, useState, type FormEvent } from 'react';
import { canonicalizationIssues } from '@/server/encoding/jcs';
import { bodySizeIssue, findDuplicateKey, findProtoKey, PROTO_KEY_DETAIL } from '@/server/http/json-limits';
import { compileSchema, SCHEMA_RECURSION_RULE, SCHEMA_SLUG_PATTERN, SCHEMA_SLUG_RULE } from '@/server/registry/metadata-validation';
import { apiJson, errorMessage, type MetadataSchemaRecord } from './api';
import { GatedSubmit } from './gated-submit';
import { describeJsonError, parseJsonText } from './json-text';
import { METADATA_SCHEMAS_KEY } from './queries';
import { useScopeGate } from './session';

type SchemaTextCheck =
  | { kind: 'empty' }
  | { kind: 'syntax' | 'compile' | 'rejected'; message: string }
  | { kind: 'valid'; schema: unknown };

/**
 * Parses the schema text, applies the server's checks on JSON request bodies (no `__proto__` key, no
 * repeated key, values that PostgreSQL jsonb stores unchanged) and compiles it with the server's ajv
 * setup. The body size depends on the slug too, so the form checks it separately.
 */
function checkSchemaText(text: string): SchemaTextCheck {
  if (text.trim() === '') return { kind: 'empty' };
  const parsed = parseJsonText(text);
  if (!parsed.ok) return { kind: 'syntax', message: `Invalid JSON at ${describeJsonError(parsed)}.` };

  const protoKey = findProtoKey(parsed.value, 'schema');
  if (protoKey !== undefined) return { kind: 'rejected', message: `${PROTO_KEY_DETAIL} Rename the key at ${protoKey}.` };
  const duplicateKey = findDuplicateKey(text, 'schema');
  if (duplicateKey !== undefined) return { kind: 'rejected', message: `The key at ${duplicateKey} appears more than once in its object. Keep one.` };
  const unstorable = canonicalizationIssues(parsed.value, 'schema');
  if (unstorable.length > 0) {
    return { kind: 'rejected', message: `The server would reject this schema: ${unstorable.map((issue) => `${issue.field} ${issue.message}`).join(' ')}` };
  }

  const compiled = compileSchema(parsed.value);
  if (!compiled.ok) {
    const lead = compiled.rule === SCHEMA_RECURSION_RULE ? 'The schema cannot be registered' : 'The schema does not compile';
    return { kind: 'compile', message: `${lead}: ${compiled.message}` };
  }
  return { kind: 'valid', schema: parsed.value };
}

/** Returns the server's 413 as a check when the request body of this slug and schema is over its limit. */
function checkRequestSize(check: SchemaTextCheck, slug: string): SchemaTextCheck {
  if (check.kind !== 'valid') return check;
  const tooLarge = bodySizeIssue({ slug, schema: check.schema });
  return tooLarge ? { kind: 'rejected', message: `The schema is too large: ${tooLarge.message}.` } : check;
}

const SLUG = new RegExp(SCHEMA_SLUG_PATTERN);

const EXAMPLE = `{
  "type": "object",
  "required": ["commit"],
  "properties": { "commit": { "type": "string", "pattern": "^[0-9a-f]{7,40}$" } }
}`;

/** Registers a metadata schema (admin scope). Schemas are immutable, so a slug can be registered once. */
export function SchemaRegisterForm() {
  const queryClient = useQueryClient();
  const gate = useScopeGate('admin');
  const [slug, setSlug] = useState('');
  const [text, setText] = useState('');
  const deferredText = useDeferredValue(text);
  const textCheck = useMemo(() => checkSchemaText(deferredText), [deferredText]);
  const check = useMemo(() => checkRequestSize(textCheck, slug), [textCheck, slug]);
  const checkFailed = check.kind === 'syntax' || check.kind === 'compile' || check.kind === 'rejected';
  const checkIsCurrent = deferredText === text;
  const slugValid = SLUG.test(slug);

  const register = useMutation({
    mutationFn: (body: { slug: string; schema: unknown }) => apiJson<MetadataSchemaRecord>('/api/v1/metadata-schemas', { method: 'POST', json: body }),
    onSuccess: () => queryClient.invalidateQueries({ queryKey: METADATA_SCHEMAS_KEY }),
  });
  // Any edit clears the outcome of the last request, so no success or error outlives the input it was for.
  const edit = (apply: () => void) => {
    apply();
    if (!register.isIdle) register.reset();
  };

  const submit = (event: FormEvent) => {
    event.preventDefault();
    if (!slugValid || !checkIsCurrent || check.kind !== 'valid') return;
    register.mutate({ slug, schema: check.schema });
  };

  return (
    <form className="stacked wide" onSubmit={submit} aria-labelledby="schema-register-heading" data-testid="schema-register-form">
      <h3 id="schema-register-heading">Register a metadata schema</h3>
      <label htmlFor="schema-slug">Slug</label>
      <input
        id="schema-slug"
        name="slug"
        required
        pattern={SCHEMA_SLUG_PATTERN}
        value={slug}
        onChange={(event) => edit(() => setSlug(event.target.value))}
        aria-describedby="schema-slug-hint"
        aria-invalid={slug !== '' && !slugValid}
        data-testid="schema-slug"
      />
      <p id="schema-slug-hint" className={slug !== '' && !slugValid ? 'error' : 'hint'}>
        {SCHEMA_SLUG_RULE}; schemas cannot be changed after registration.
      </p>

      <label htmlFor="schema-json">JSON Schema (draft 2020-12)</label>
      <textarea
        id="schema-json"
        name="schema"
        className="code"
        rows={12}
        spellCheck={false}
        placeholder={EXAMPLE}
        value={text}
        onChange={(event) => edit(() => setText(event.target.value))}
        aria-describedby="schema-json-check"
        aria-invalid={checkFailed}
        data-testid="schema-json"
      />
      <p id="schema-json-check" aria-live="polite" className={checkFailed ? 'error' : 'hint'} data-testid="schema-json-check" data-state={check.kind}>
        {check.kind === 'empty' && 'Enter the schema as a JSON object.'}
        {checkFailed && check.message}
        {check.kind === 'valid' && 'Valid JSON Schema.'}
      </p>

      <GatedSubmit
        gate={gate}
        id="schema"
        blocked={!slugValid || check.kind !== 'valid' || !checkIsCurrent}
        pending={register.isPending}
        label="Register schema"
        pendingLabel="Registering…"
        testId="schema-register-submit"
      />
      {register.isError && (
        <p className="error" role="alert" data-testid="schema-register-error">
          {errorMessage(register.error)}
        </p>
      )}
      {register.isSuccess && (
        <p className="ok" role="status" data-testid="schema-register-success">
          Registered schema {register.data.slug}.
        </p>
      )}
    </form>
  );
}
