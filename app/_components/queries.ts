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

/**
 * Reads the first 500 metadata schemas by slug, the most one page of the API returns.
 * NOTE: schemas past the first 500 are not listed; add paging when a registry contains that many.
 */
export function useMetadataSchemas() {
  return useQuery({
    queryKey: METADATA_SCHEMAS_KEY,
    queryFn: () => apiJson<{ metadata_schemas: MetadataSchemaRecord[] }>('/api/v1/metadata-schemas?limit=500'),
  });
}
