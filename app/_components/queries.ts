'use client';

import { useQuery } from '@tanstack/react-query';
import { apiJson, type MetadataSchemaRecord, type RetentionClass } from './api';

/** Query key of the metadata schema list; registering a schema invalidates it. */
export const METADATA_SCHEMAS_KEY = ['metadata-schemas'] as const;

export function useRetentionClasses() {
  return useQuery({
    queryKey: ['retention-classes'],
    queryFn: () => apiJson<{ retention_classes: RetentionClass[] }>('/api/v1/retention-classes'),
  });
}

type MetadataSchemaPage = { metadata_schemas: MetadataSchemaRecord[]; next_cursor: string | null };

/** Reads every metadata schema in slug order, following next_cursor through pages of 500, the API's maximum. */
async function fetchAllMetadataSchemas(): Promise<{ metadata_schemas: MetadataSchemaRecord[] }> {
  const schemas: MetadataSchemaRecord[] = [];
  let cursor: string | null = null;
  do {
    const query: string = cursor === null ? '' : `&cursor=${encodeURIComponent(cursor)}`;
    const page: MetadataSchemaPage = await apiJson<MetadataSchemaPage>(`/api/v1/metadata-schemas?limit=500${query}`);
    schemas.push(...page.metadata_schemas);
    cursor = page.next_cursor;
  } while (cursor !== null);
  return { metadata_schemas: schemas };
}

export function useMetadataSchemas() {
  return useQuery({ queryKey: METADATA_SCHEMAS_KEY, queryFn: fetchAllMetadataSchemas });
}
