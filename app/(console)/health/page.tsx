'use client';

import { useQuery } from '@tanstack/react-query';
import { ApiError, apiJson, errorMessage, formatBytes, formatClassDuration, formatTime, type BackendReport, type HealthReport } from '../../_components/api';
import { useMetadataSchemas, useRetentionClasses } from '../../_components/queries';
import { SchemaRegisterForm } from '../../_components/schema-register-form';

/** Reads /health. A degraded server returns 503 with the same report, which is shown, not treated as an error. */
async function fetchHealth(): Promise<HealthReport> {
  try {
    return await apiJson<HealthReport>('/api/v1/health');
  } catch (error) {
    if (error instanceof ApiError && error.status === 503 && error.problem && 'backends' in error.problem) {
      return error.problem as unknown as HealthReport;
    }
    throw error;
  }
}

function UsageBar({ backend }: { backend: BackendReport }) {
  if (backend.free_bytes === null || backend.total_bytes === null || backend.total_bytes === 0) return <span>unknown</span>;
  const used = backend.total_bytes - backend.free_bytes;
  return (
    <span className="usage">
      <meter min={0} max={backend.total_bytes} value={used} high={backend.total_bytes * 0.9} aria-label={`Space used on ${backend.id}`} />{' '}
      {formatBytes(backend.free_bytes)} free of {formatBytes(backend.total_bytes)}
    </span>
  );
}

export default function HealthPage() {
  const health = useQuery({ queryKey: ['health'], queryFn: fetchHealth, refetchInterval: 10_000 });
  const classes = useRetentionClasses();
  const schemas = useMetadataSchemas();

  return (
    <section>
      <h1>Health</h1>
      {health.isPending && <p className="status">Checking…</p>}
      {health.isError && (
        <p className="error" role="alert">
          {errorMessage(health.error)}
        </p>
      )}
      {health.isSuccess && (
        <>
          <p>
            Overall{' '}
            <span className={`badge badge-${health.data.status}`} data-testid="health-status">
              {health.data.status}
            </span>{' '}
            · database {health.data.database.kind}{' '}
            <span className={`badge badge-${health.data.database.status}`} data-testid="health-db">
              {health.data.database.status}
            </span>{' '}
            · failed storage locations <strong data-testid="health-failed-locations">{health.data.failed_storage_locations}</strong>
          </p>
          <table className="grid" data-testid="backend-table">
            <thead>
              <tr>
                <th>Backend</th>
                <th>Kind</th>
                <th>Tier</th>
                <th>Role</th>
                <th>Status</th>
                <th>Space</th>
              </tr>
            </thead>
            <tbody>
              {health.data.backends.map((backend) => (
                <tr key={backend.id} data-testid="backend-row">
                  <td>{backend.id}</td>
                  <td>{backend.kind}</td>
                  <td>{backend.retrieval_tier}</td>
                  <td>{backend.role}</td>
                  <td>
                    <span className={`badge badge-${backend.status}`}>{backend.status}</span> {backend.detail}
                  </td>
                  <td>
                    <UsageBar backend={backend} />
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </>
      )}

      <h2>Retention classes</h2>
      {classes.isPending && <p className="status">Loading the retention classes…</p>}
      {classes.isError && (
        <p className="error" role="alert">
          {errorMessage(classes.error)}
        </p>
      )}
      <table className="grid" data-testid="class-table">
        <thead>
          <tr>
            <th>Class</th>
            <th>Default duration</th>
            <th>Deletion</th>
          </tr>
        </thead>
        <tbody>
          {classes.data?.retention_classes.map((item) => (
            <tr key={item.class_id} data-testid="class-row" data-class-id={item.class_id}>
              <td>{item.class_id}</td>
              <td data-testid="class-duration" title={item.default_duration_seconds === null ? undefined : `${item.default_duration_seconds} seconds`}>
                {formatClassDuration(item.default_duration_seconds)}
              </td>
              <td>{item.deletion_strategy}</td>
            </tr>
          ))}
        </tbody>
      </table>

      <h2>Metadata schemas</h2>
      {schemas.isPending && <p className="status">Loading the metadata schemas…</p>}
      {schemas.isError && (
        <p className="error" role="alert">
          {errorMessage(schemas.error)}
        </p>
      )}
      {schemas.isSuccess && schemas.data.metadata_schemas.length === 0 && <p className="status">No schemas registered.</p>}
      <ul className="plain" data-testid="schema-list">
        {schemas.data?.metadata_schemas.map((item) => (
          <li key={item.slug} data-testid="schema-item" data-slug={item.slug}>
            <details>
              <summary>
                <code>{item.slug}</code>{' '}
                <span className="hint">
                  by {item.created_by}, {formatTime(item.created_at)}
                </span>
              </summary>
              <pre className="json">{JSON.stringify(item.schema, null, 2)}</pre>
            </details>
          </li>
        ))}
      </ul>
      <SchemaRegisterForm />
    </section>
  );
}
