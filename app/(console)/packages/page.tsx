'use client';

import { useInfiniteQuery } from '@tanstack/react-query';
import Link from 'next/link';
import { usePathname, useRouter, useSearchParams } from 'next/navigation';
import { Suspense, useState, type FormEvent } from 'react';
import { apiJson, errorMessage, formatTime, type PackageRecord } from '../../_components/api';

const FILTERS = [
  ['name', 'Name'],
  ['producer', 'Producer'],
  ['subject', 'Subject'],
  ['retention_class', 'Class'],
  ['metadata_key', 'Metadata key'],
  ['metadata_value', 'Metadata value'],
] as const;
const PAGE_SIZE = 50;

interface PackagePage {
  packages: PackageRecord[];
  next_cursor: string | null;
}

function PackageList() {
  const router = useRouter();
  const pathname = usePathname();
  const params = useSearchParams();
  const applied = new URLSearchParams();
  for (const [key] of [...FILTERS, ['status']]) {
    const value = params.get(key);
    if (value) applied.set(key, value);
  }
  const appliedKey = applied.toString();
  const [draft, setDraft] = useState<Record<string, string>>(() => Object.fromEntries(applied));

  const list = useInfiniteQuery({
    queryKey: ['packages', appliedKey],
    initialPageParam: null as string | null,
    queryFn: ({ pageParam }) => {
      const query = new URLSearchParams(appliedKey);
      query.set('limit', String(PAGE_SIZE));
      if (pageParam) query.set('cursor', pageParam);
      return apiJson<PackagePage>(`/api/v1/packages?${query}`);
    },
    getNextPageParam: (page) => page.next_cursor,
  });

  const apply = (event: FormEvent) => {
    event.preventDefault();
    const next = new URLSearchParams();
    for (const [key, value] of Object.entries(draft)) if (value.trim() !== '') next.set(key, value.trim());
    router.replace(next.size > 0 ? `${pathname}?${next}` : pathname);
  };
  const packages = list.data?.pages.flatMap((page) => page.packages) ?? [];

  return (
    <section>
      <h1>Packages</h1>
      <form className="filters" onSubmit={apply} data-testid="package-filters">
        {FILTERS.map(([key, label]) => (
          <label key={key}>
            {label}
            <input name={key} value={draft[key] ?? ''} onChange={(event) => setDraft({ ...draft, [key]: event.target.value })} />
          </label>
        ))}
        <label>
          Status
          <select name="status" value={draft.status ?? ''} onChange={(event) => setDraft({ ...draft, status: event.target.value })}>
            <option value="">any</option>
            <option value="open">open</option>
            <option value="finalized">finalized</option>
            <option value="deleted">deleted</option>
          </select>
        </label>
        <button type="submit" data-testid="apply-filters">
          Apply
        </button>
      </form>

      {list.isPending && <p className="status">Loading packages…</p>}
      {list.isError && (
        <p className="error" role="alert">
          {errorMessage(list.error)}
        </p>
      )}
      {list.isSuccess && packages.length === 0 && <p className="status">No packages match.</p>}
      {packages.length > 0 && (
        <table className="grid" data-testid="package-table">
          <thead>
            <tr>
              <th>Name</th>
              <th>Producer</th>
              <th>Subject</th>
              <th>Class</th>
              <th>Status</th>
              <th>Created</th>
              <th>Expires</th>
            </tr>
          </thead>
          <tbody>
            {packages.map((item) => (
              <tr key={item.id} data-testid="package-row" data-package-id={item.id}>
                <td>
                  <Link href={`/packages/${item.id}`}>{item.name}</Link>
                </td>
                <td>{item.producer}</td>
                <td>{item.subject}</td>
                <td>{item.retention_class}</td>
                <td>
                  <span className={`badge badge-${item.status}`}>{item.status}</span>
                </td>
                <td>{formatTime(item.created_at)}</td>
                <td>{formatTime(item.expires_at)}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      {list.hasNextPage && (
        <button type="button" onClick={() => list.fetchNextPage()} disabled={list.isFetchingNextPage} data-testid="load-more">
          {list.isFetchingNextPage ? 'Loading…' : 'Load more'}
        </button>
      )}
    </section>
  );
}

export default function PackagesPage() {
  return (
    <Suspense fallback={<p className="status">Loading…</p>}>
      <PackageList />
    </Suspense>
  );
}
