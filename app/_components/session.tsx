'use client';

import { useMutation, useQuery, useQueryClient } from '@tanstack/react-query';
import Link from 'next/link';
import { usePathname, useRouter } from 'next/navigation';
import { useEffect, type ReactNode } from 'react';
import { ApiError, apiJson, errorMessage, hasScope, type Scope, type SessionInfo } from './api';

export const SESSION_KEY = ['session'] as const;

export function useSession() {
  return useQuery({ queryKey: SESSION_KEY, queryFn: () => apiJson<SessionInfo>('/api/v1/session'), retry: false, staleTime: 60_000 });
}

/** Returns a disabled flag and the reason to show when the session lacks the scope. */
export function useScopeGate(scope: Scope): { allowed: boolean; reason: string } {
  const session = useSession();
  const allowed = hasScope(session.data, scope);
  return { allowed, reason: allowed ? '' : `Your token "${session.data?.name ?? ''}" lacks the "${scope}" scope.` };
}

function ConsoleHeader({ session }: { session: SessionInfo }) {
  const router = useRouter();
  const queryClient = useQueryClient();
  const pathname = usePathname();
  const signOut = useMutation({
    mutationFn: () => apiJson<void>('/api/v1/session', { method: 'DELETE' }),
    onSuccess: () => {
      queryClient.clear();
      router.replace('/sign-in');
    },
  });
  const nav = [
    ['/packages', 'Packages'],
    ['/packages/new', 'New package'],
    ['/events', 'Events'],
    ['/health', 'Health'],
    ['/api-reference', 'API reference'],
  ] as const;

  return (
    <header className="console-header">
      <span className="brand">artifact-store</span>
      <nav aria-label="Main">
        {nav.map(([href, label]) => (
          <Link key={href} href={href} aria-current={pathname === href ? 'page' : undefined}>
            {label}
          </Link>
        ))}
      </nav>
      <span className="who" data-testid="session-actor">
        {session.name}
      </span>
      <span className="scopes" data-testid="session-scopes">
        {session.scopes.join(' ')}
      </span>
      <button type="button" data-testid="sign-out" onClick={() => signOut.mutate()} disabled={signOut.isPending}>
        Sign out
      </button>
      {signOut.isError && <span className="error">{errorMessage(signOut.error)}</span>}
    </header>
  );
}

/** Shows the console chrome for a signed-in session and sends everyone else to the sign-in page. */
export function RequireSession({ children }: { children: ReactNode }) {
  const session = useSession();
  const router = useRouter();
  const pathname = usePathname();
  const unauthorized = session.error instanceof ApiError && session.error.status === 401;

  useEffect(() => {
    if (unauthorized) router.replace(`/sign-in?next=${encodeURIComponent(pathname)}`);
  }, [unauthorized, router, pathname]);

  if (session.isPending) return <p className="status">Checking the session…</p>;
  if (session.isError) {
    if (unauthorized) return <p className="status">Redirecting to sign-in…</p>;
    return (
      <p className="error" role="alert">
        Could not read the session: {errorMessage(session.error)}
      </p>
    );
  }
  return (
    <>
      <ConsoleHeader session={session.data} />
      <main className="console-main">{children}</main>
    </>
  );
}
