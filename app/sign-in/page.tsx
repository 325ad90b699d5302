'use client';

import { useMutation, useQueryClient } from '@tanstack/react-query';
import { useRouter, useSearchParams } from 'next/navigation';
import { Suspense, useState, type FormEvent } from 'react';
import { apiJson, errorMessage, type SessionInfo } from '../_components/api';
import { SESSION_KEY } from '../_components/session';

function SignInForm() {
  const router = useRouter();
  const params = useSearchParams();
  const queryClient = useQueryClient();
  // The token lives only in this field's state; it is sent once and never stored.
  const [token, setToken] = useState('');
  const signIn = useMutation({
    mutationFn: (value: string) => apiJson<SessionInfo>('/api/v1/session', { method: 'POST', json: { token: value } }),
    onSuccess: (session) => {
      setToken('');
      queryClient.setQueryData(SESSION_KEY, session);
      const next = params.get('next');
      router.replace(next && next.startsWith('/') && !next.startsWith('//') ? next : '/packages');
    },
  });
  const submit = (event: FormEvent) => {
    event.preventDefault();
    signIn.mutate(token.trim());
  };

  return (
    <main className="sign-in">
      <h1>artifact-store</h1>
      <form onSubmit={submit} data-testid="sign-in-form">
        <label htmlFor="token">API token</label>
        <input
          id="token"
          name="token"
          type="password"
          autoComplete="off"
          required
          value={token}
          onChange={(event) => setToken(event.target.value)}
          data-testid="token-input"
        />
        <button type="submit" disabled={signIn.isPending || token.trim() === ''} data-testid="sign-in-submit">
          {signIn.isPending ? 'Signing in…' : 'Sign in'}
        </button>
        {signIn.isError && (
          <p className="error" role="alert" data-testid="sign-in-error">
            {errorMessage(signIn.error)}
          </p>
        )}
      </form>
    </main>
  );
}

export default function SignInPage() {
  return (
    <Suspense fallback={<p className="status">Loading…</p>}>
      <SignInForm />
    </Suspense>
  );
}
