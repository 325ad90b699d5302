'use client';

import { useInfiniteQuery, useMutation, useQuery, useQueryClient } from '@tanstack/react-query';
import { useParams } from 'next/navigation';
import { useState } from 'react';
import { apiJson, describeExpiry, errorMessage, formatBytes, formatTime, type FileRecord, type PackageRecord } from '../../../_components/api';
import { CopyButton } from '../../../_components/copy-button';
import { useRetentionClasses } from '../../../_components/queries';
import { RetentionPanel } from '../../../_components/retention-panel';
import { useScopeGate } from '../../../_components/session';
import { UploadArea } from '../../../_components/upload-area';

interface FilePage {
  files: FileRecord[];
  next_cursor: string | null;
}

function FilesTable({ packageId }: { packageId: string }) {
  const files = useInfiniteQuery({
    queryKey: ['package', packageId, 'files'],
    initialPageParam: null as string | null,
    queryFn: ({ pageParam }) =>
      apiJson<FilePage>(`/api/v1/packages/${packageId}/files?limit=500${pageParam ? `&cursor=${encodeURIComponent(pageParam)}` : ''}`),
    getNextPageParam: (page) => page.next_cursor,
  });
  const rows = files.data?.pages.flatMap((page) => page.files) ?? [];

  return (
    <section className="panel" aria-labelledby="files-heading">
      <h2 id="files-heading">Files ({rows.length}{files.hasNextPage ? '+' : ''})</h2>
      {files.isPending && <p className="status">Loading files…</p>}
      {files.isError && (
        <p className="error" role="alert">
          {errorMessage(files.error)}
        </p>
      )}
      {files.isSuccess && rows.length === 0 && <p className="status">No files yet.</p>}
      {rows.length > 0 && (
        <table className="grid" data-testid="files-table">
          <thead>
            <tr>
              <th>Path</th>
              <th className="num">Size</th>
              <th>Media type</th>
              <th>BLAKE3</th>
              <th>SHA-256</th>
              <th />
            </tr>
          </thead>
          <tbody>
            {rows.map((file) => (
              <tr key={file.id} data-testid="file-row" data-path={file.relative_path}>
                <td className="mono path" title={file.relative_path} data-testid="file-path">
                  {file.relative_path}
                </td>
                <td className="num" title={`${file.size_bytes} bytes`}>
                  {formatBytes(file.size_bytes)}
                </td>
                <td>{file.media_type}</td>
                <td className="digest">
                  <code data-testid="file-blake3">{file.digest_primary_hex}</code>
                  <CopyButton value={file.digest_primary_hex} label={`BLAKE3 of ${file.relative_path}`} />
                </td>
                <td className="digest">
                  <code data-testid="file-sha256">{file.digest_sha256_hex}</code>
                  <CopyButton value={file.digest_sha256_hex} label={`SHA-256 of ${file.relative_path}`} />
                </td>
                <td>
                  <a href={`/api/v1/files/${file.id}/download`} download data-testid="file-download">
                    download
                  </a>
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      {files.hasNextPage && (
        <button type="button" onClick={() => files.fetchNextPage()} disabled={files.isFetchingNextPage}>
          Load more files
        </button>
      )}
    </section>
  );
}

function ManifestPanel({ pkg }: { pkg: PackageRecord }) {
  const manifest = useQuery({
    queryKey: ['package', pkg.id, 'manifest'],
    queryFn: () => apiJson<Record<string, unknown>>(`/api/v1/packages/${pkg.id}/manifest.json`),
    enabled: pkg.status === 'finalized',
    staleTime: Infinity,
  });
  if (pkg.status !== 'finalized') return null;

  return (
    <section className="panel" aria-labelledby="manifest-heading">
      <h2 id="manifest-heading">Manifest</h2>
      <p>
        Digest <code data-testid="manifest-digest">{pkg.manifest_digest}</code>
        {pkg.manifest_digest && <CopyButton value={pkg.manifest_digest} label="manifest digest" />}{' '}
        <a href={`/api/v1/packages/${pkg.id}/manifest`} download={`${pkg.name}.manifest.cbor`} data-testid="manifest-cbor">
          download CBOR
        </a>{' '}
        <a href={`/api/v1/packages/${pkg.id}/manifest.json`} target="_blank" rel="noreferrer">
          open JSON
        </a>
      </p>
      {manifest.isPending && <p className="status">Loading the manifest…</p>}
      {manifest.isError && (
        <p className="error" role="alert">
          {errorMessage(manifest.error)}
        </p>
      )}
      {manifest.isSuccess && (
        <pre className="json" data-testid="manifest-json">
          {JSON.stringify(manifest.data, null, 2)}
        </pre>
      )}
    </section>
  );
}

function FinalizeControl({ pkg }: { pkg: PackageRecord }) {
  const queryClient = useQueryClient();
  const gate = useScopeGate('write');
  const [confirming, setConfirming] = useState(false);
  const finalize = useMutation({
    mutationFn: () => apiJson<PackageRecord>(`/api/v1/packages/${pkg.id}/finalize`, { method: 'POST' }),
    onSuccess: (record) => {
      setConfirming(false);
      queryClient.setQueryData(['package', pkg.id], record);
      void queryClient.invalidateQueries({ queryKey: ['package', pkg.id] });
    },
  });
  if (pkg.status !== 'open') return null;

  return (
    <div className="finalize">
      <button
        type="button"
        className="danger"
        disabled={!gate.allowed || finalize.isPending}
        title={gate.reason || undefined}
        aria-describedby={gate.allowed ? undefined : 'finalize-scope-reason'}
        onClick={() => setConfirming(true)}
        data-testid="finalize"
      >
        Finalize…
      </button>
      {!gate.allowed && (
        <span id="finalize-scope-reason" className="hint" data-testid="finalize-reason">
          {gate.reason}
        </span>
      )}
      {confirming && (
        <div role="alertdialog" aria-labelledby="finalize-warning" className="confirm" data-testid="finalize-dialog">
          <p id="finalize-warning">
            Finalizing is irreversible: the package is frozen, no file can be added or removed, and its manifest is computed once.
          </p>
          <button type="button" className="danger" onClick={() => finalize.mutate()} disabled={finalize.isPending} data-testid="finalize-confirm">
            {finalize.isPending ? 'Finalizing…' : 'Finalize permanently'}
          </button>{' '}
          <button type="button" onClick={() => setConfirming(false)}>
            Cancel
          </button>
        </div>
      )}
      {finalize.isError && (
        <p className="error" role="alert" data-testid="finalize-error">
          {errorMessage(finalize.error)}
        </p>
      )}
    </div>
  );
}

export default function PackagePage() {
  const { id } = useParams<{ id: string }>();
  const writeGate = useScopeGate('write');
  const classes = useRetentionClasses();
  const pkg = useQuery({ queryKey: ['package', id], queryFn: () => apiJson<PackageRecord>(`/api/v1/packages/${id}`) });

  if (pkg.isPending) return <p className="status">Loading the package…</p>;
  if (pkg.isError)
    return (
      <p className="error" role="alert">
        {errorMessage(pkg.error)}
      </p>
    );
  const record = pkg.data;
  let uploadBlocked = '';
  if (!writeGate.allowed) {
    uploadBlocked = writeGate.reason;
  } else if (record.status !== 'open') {
    uploadBlocked = `The package is ${record.status}; files can be added only while it is open.`;
  }

  return (
    <article data-testid="package-detail" data-package-id={record.id}>
      <h1>
        {record.name}{' '}
        <span className={`badge badge-${record.status}`} data-testid="package-status">
          {record.status}
        </span>
      </h1>
      <dl className="fields">
        <dt>ID</dt>
        <dd className="mono">{record.id}</dd>
        <dt>Producer</dt>
        <dd>{record.producer}</dd>
        <dt>Subject</dt>
        <dd>{record.subject}</dd>
        <dt>Retention class</dt>
        <dd>{record.retention_class}</dd>
        <dt>Metadata schema</dt>
        <dd>{record.metadata_schema ?? 'none'}</dd>
        <dt>Created</dt>
        <dd>
          {formatTime(record.created_at)} by {record.created_by}
        </dd>
        <dt>Finalized</dt>
        <dd>{formatTime(record.finalized_at)}</dd>
        <dt>Expires</dt>
        <dd data-testid="package-expires">{describeExpiry(record, classes.data?.retention_classes)}</dd>
        <dt>Manifest digest</dt>
        <dd className="mono">{record.manifest_digest ?? '—'}</dd>
      </dl>
      <h2>Metadata</h2>
      <pre className="json" data-testid="package-metadata-view">
        {JSON.stringify(record.metadata, null, 2)}
      </pre>
      <FinalizeControl pkg={record} />
      {record.status === 'open' && <UploadArea packageId={record.id} disabledReason={uploadBlocked} />}
      <FilesTable packageId={record.id} />
      <ManifestPanel pkg={record} />
      <RetentionPanel packageId={record.id} />
    </article>
  );
}
