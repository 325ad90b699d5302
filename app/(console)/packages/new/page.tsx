'use client';

import { useMutation } from '@tanstack/react-query';
import { useRouter } from 'next/navigation';
import { useRef, useState, type FormEvent } from 'react';
import { apiJson, errorMessage, formatClassDuration, type PackageRecord } from '../../../_components/api';
import { GatedSubmit } from '../../../_components/gated-submit';
import { useMetadataCheck, type MetadataCheck } from '../../../_components/metadata-check';
import { useMetadataSchemas, useRetentionClasses } from '../../../_components/queries';
import { DEFAULT_MAX_METADATA_BYTES } from '@/server/http/json-limits';
import { useScopeGate, useSession } from '../../../_components/session';

export default function NewPackagePage() {
  const router = useRouter();
  const gate = useScopeGate('write');
  const classes = useRetentionClasses();
  const schemas = useMetadataSchemas();
  const [form, setForm] = useState({ name: '', producer: '', subject: '', retention_class: '', metadata_schema: '', metadata: '{}' });
  const chosenSchema = schemas.data?.metadata_schemas.find((item) => item.slug === form.metadata_schema);
  const session = useSession();
  // Until the session loads, the default limit applies; the server checks again either way.
  const metadata = useMetadataCheck(form.metadata, chosenSchema, session.data?.max_metadata_bytes ?? DEFAULT_MAX_METADATA_BYTES);
  const metadataInvalid = metadata.value === undefined || metadata.issues.length > 0;
  // A submit of the same body as the last one sends the same key, so a submit repeated after a lost
  // response gets the package the first one created. An edited body is a new request with a new key.
  const idempotency = useRef<{ key: string; body: string } | undefined>(undefined);
  const create = useMutation({
    mutationFn: (body: unknown) => {
      const sent = JSON.stringify(body);
      if (idempotency.current?.body !== sent) idempotency.current = { key: randomKey(), body: sent };
      return apiJson<PackageRecord>('/api/v1/packages', { method: 'POST', json: body, headers: { 'Idempotency-Key': `"${idempotency.current.key}"` } });
    },
    onSuccess: (record) => router.push(`/packages/${record.id}`),
  });

  const submit = (event: FormEvent) => {
    event.preventDefault();
    // The browser checks first so an invalid request is never sent; the server checks again and decides.
    if (metadataInvalid) return;
    create.mutate({
      name: form.name,
      producer: form.producer,
      subject: form.subject,
      retention_class: form.retention_class || classes.data?.retention_classes[0]?.class_id,
      metadata_schema: form.metadata_schema || null,
      metadata: metadata.value,
    });
  };
  const field = (key: keyof typeof form) => ({
    id: `package-${key}`,
    name: key,
    value: form[key],
    onChange: (event: { target: { value: string } }) => setForm({ ...form, [key]: event.target.value }),
  });

  return (
    <section>
      <h1>New package</h1>
      <form className="stacked" onSubmit={submit} data-testid="create-package-form">
        <label htmlFor="package-name">Name</label>
        <input {...field('name')} required data-testid="package-name" />
        <label htmlFor="package-producer">Producer</label>
        <input {...field('producer')} required data-testid="package-producer" />
        <label htmlFor="package-subject">Subject</label>
        <input {...field('subject')} required data-testid="package-subject" />

        <label htmlFor="package-retention_class">Retention class</label>
        {classes.isError ? (
          <p className="error" role="alert">
            Could not load the retention classes: {errorMessage(classes.error)}
          </p>
        ) : (
          <select {...field('retention_class')} data-testid="package-class" disabled={classes.isPending}>
            {classes.data?.retention_classes.map((item) => (
              <option key={item.class_id} value={item.class_id}>
                {item.class_id} ({formatClassDuration(item.default_duration_seconds)})
              </option>
            ))}
          </select>
        )}

        <label htmlFor="package-metadata_schema">Metadata schema</label>
        <select {...field('metadata_schema')} data-testid="package-schema" disabled={schemas.isPending}>
          <option value="">none</option>
          {schemas.data?.metadata_schemas.map((item) => (
            <option key={item.slug} value={item.slug}>
              {item.slug}
            </option>
          ))}
        </select>
        {schemas.isPending && <p className="status">Loading the metadata schemas…</p>}
        {schemas.isError && (
          <p className="error" role="alert">
            Could not load the metadata schemas: {errorMessage(schemas.error)}
          </p>
        )}

        <label htmlFor="package-metadata">Metadata (JSON object)</label>
        <textarea
          {...field('metadata')}
          className="code"
          rows={6}
          spellCheck={false}
          aria-invalid={metadataInvalid}
          aria-describedby="metadata-check metadata-issues"
          data-testid="package-metadata"
        />
        <MetadataStatus check={metadata} schemaSlug={chosenSchema?.slug} />

        <GatedSubmit
          gate={gate}
          id="create"
          blocked={metadataInvalid}
          pending={create.isPending}
          label="Create package"
          pendingLabel="Creating…"
          testId="create-package-submit"
        />
        {create.isError && (
          <p className="error" role="alert" data-testid="create-package-error">
            {errorMessage(create.error)}
          </p>
        )}
      </form>
    </section>
  );
}

/** Returns 128 random bits as hex. crypto.randomUUID exists only in secure contexts, and the console may be served over plain HTTP. */
function randomKey(): string {
  return Array.from(crypto.getRandomValues(new Uint8Array(16)), (byte) => byte.toString(16).padStart(2, '0')).join('');
}

/** Shows whether the metadata parses and, with a schema chosen, each violation with its path and keyword. */
function MetadataStatus({ check, schemaSlug }: { check: MetadataCheck; schemaSlug: string | undefined }) {
  let summary = 'Valid JSON object.';
  if (check.syntaxError) summary = check.syntaxError;
  else if (check.issues.length > 0) summary = 'The metadata is invalid:';
  else if (schemaSlug && check.schemaError) summary = `Valid JSON object; schema "${schemaSlug}" does not compile in the browser (${check.schemaError}), so the server checks it.`;
  else if (schemaSlug) summary = `Valid JSON object that matches schema "${schemaSlug}".`;
  const failed = check.syntaxError !== '' || check.issues.length > 0;

  return (
    <div aria-live="polite">
      <p id="metadata-check" className={failed ? 'error' : 'hint'} data-testid="metadata-check">
        {summary}
      </p>
      <ul id="metadata-issues" className="issues" data-testid="metadata-issues">
        {check.issues.map((issue, index) => (
          <li key={`${issue.field} ${issue.rule} ${index}`} className="error" data-testid="metadata-issue" data-field={issue.field} data-rule={issue.rule}>
            <code>{issue.field}</code> {issue.message} <span className="hint">(rule: {issue.rule})</span>
          </li>
        ))}
      </ul>
    </div>
  );
}
