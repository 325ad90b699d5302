'use client';

import { useMutation, useQuery } from '@tanstack/react-query';
import { useRouter } from 'next/navigation';
import { useState, type FormEvent } from 'react';
import { apiJson, errorMessage, type MetadataSchemaRecord, type PackageRecord, type RetentionClass } from '../../../_components/api';
import { useScopeGate } from '../../../_components/session';

/** Parses the metadata textarea; returns the object or the reason it is not one. */
function parseMetadata(text: string): { value: Record<string, unknown> } | { error: string } {
  if (text.trim() === '') return { value: {} };
  try {
    const value: unknown = JSON.parse(text);
    if (value === null || typeof value !== 'object' || Array.isArray(value)) return { error: 'Metadata must be a JSON object, such as {"build": 42}.' };
    return { value: value as Record<string, unknown> };
  } catch (error) {
    return { error: `Metadata is not valid JSON: ${(error as Error).message}` };
  }
}

export default function NewPackagePage() {
  const router = useRouter();
  const gate = useScopeGate('write');
  const classes = useQuery({
    queryKey: ['retention-classes'],
    queryFn: () => apiJson<{ retention_classes: RetentionClass[] }>('/api/v1/retention-classes'),
  });
  const schemas = useQuery({
    queryKey: ['metadata-schemas'],
    queryFn: () => apiJson<{ metadata_schemas: MetadataSchemaRecord[] }>('/api/v1/metadata-schemas?limit=500'),
  });
  const [form, setForm] = useState({ name: '', producer: '', subject: '', retention_class: '', metadata_schema: '', metadata: '{}' });
  const metadata = parseMetadata(form.metadata);
  const create = useMutation({
    mutationFn: (body: unknown) => apiJson<PackageRecord>('/api/v1/packages', { method: 'POST', json: body }),
    onSuccess: (record) => router.push(`/packages/${record.id}`),
  });

  const submit = (event: FormEvent) => {
    event.preventDefault();
    if ('error' in metadata) return;
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
                {item.class_id} ({item.default_duration_seconds === null ? 'no expiry' : `${Math.round(item.default_duration_seconds / 86400)} days`})
              </option>
            ))}
          </select>
        )}

        <label htmlFor="package-metadata_schema">Metadata schema</label>
        <select {...field('metadata_schema')} data-testid="package-schema">
          <option value="">none</option>
          {schemas.data?.metadata_schemas.map((item) => (
            <option key={item.slug} value={item.slug}>
              {item.slug}
            </option>
          ))}
        </select>
        {schemas.isError && <p className="error">Could not load the metadata schemas: {errorMessage(schemas.error)}</p>}

        <label htmlFor="package-metadata">Metadata (JSON object)</label>
        <textarea {...field('metadata')} rows={6} aria-describedby="metadata-check" data-testid="package-metadata" />
        <p id="metadata-check" className={'error' in metadata ? 'error' : 'hint'} data-testid="metadata-check">
          {'error' in metadata ? metadata.error : 'Valid JSON object.'}
        </p>

        <button
          type="submit"
          disabled={!gate.allowed || create.isPending || 'error' in metadata}
          title={gate.reason || undefined}
          aria-describedby={gate.allowed ? undefined : 'create-scope-reason'}
          data-testid="create-package-submit"
        >
          {create.isPending ? 'Creating…' : 'Create package'}
        </button>
        {!gate.allowed && (
          <p id="create-scope-reason" className="hint">
            {gate.reason}
          </p>
        )}
        {create.isError && (
          <p className="error" role="alert" data-testid="create-package-error">
            {errorMessage(create.error)}
          </p>
        )}
      </form>
    </section>
  );
}
